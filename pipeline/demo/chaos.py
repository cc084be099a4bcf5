"""`ops/chaos`: the fault run a platform team repeats on their own machine or cluster.

Runs the whole pipeline (a local broker unless `--bootstrap` is given, the KSeF
emulator, N workers), ingests invoices in waves and meanwhile kills workers with
SIGKILL (and starts them again, as a supervisor would), restarts the broker, throws
KSeF 503 and 429 storms and lost responses at the workers; then waits for every invoice
to settle and counts what the pipeline promises never happens:

    lost                     invoices with neither an outcome nor a rejection
    in KSeF twice            invoice hashes KSeF accepted more than once
    repeated outcomes        outcome records beyond one per invoice id
    accepted and rejected    invoice ids with an outcome and a rejection both
    repeated rejections      (shown, not a failure) rejection records beyond one per
                             invoice id: a record redelivered after a SIGKILL may be
                             rejected again (at least once); after clean stops, 0
    resent sessions          a batch closed in a second KSeF session (KSeF met invoices it
                             had already: 440)
    abandoned sessions       (shown, not a failure) sessions KSeF opened whose answer was
                             lost: never used, KSeF closes them itself
    settle s                 from the last fault to the last invoice accounted for

and exits non-zero when any count is not zero or an invoice is still open.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.demo.processes import console_logs, free_port
from pipeline.demo.run import REPO, kafka_broker, topic_catalog

EVENT_POLL_S = 0.25


def say(message: str) -> None:
    print(f"[chaos] {message}", flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ops/chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--invoices", type=int, default=12_000)
    p.add_argument("--sellers", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--kills", type=int, default=3, help="SIGKILLs of a random worker")
    p.add_argument("--broker-restarts", type=int, default=1)
    p.add_argument("--storms", type=int, default=2,
                   help="KSeF storms (503, 429, lost responses), in turn")
    p.add_argument("--span", type=float, default=150.0,
                   help="seconds over which invoices arrive (in 15 waves) and faults fall "
                        "(default 150), so every fault meets traffic in every stage")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--seed", type=int, default=None, help="fault schedule seed")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="give up on a run after this many seconds")
    p.add_argument("--var", default=str(REPO / "var/chaos"), help="state and logs")
    return p.parse_args(argv)


@dataclass
class Worker:
    index: int
    cmd: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Report:
    run: int
    submitted: int
    accepted: int = 0
    rejected: int = 0
    lost: int = 0
    in_ksef_twice: int = 0
    repeated_outcomes: int = 0
    accepted_and_rejected: int = 0
    repeated_rejections: int = 0  # shown: at least once after a SIGKILL
    resent_sessions: int = 0
    abandoned_sessions: int = 0  # opened in KSeF, answer lost: never used, closed by KSeF
    settle_s: float = 0.0
    seconds: float = 0.0
    faults: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    def clean(self) -> bool:
        return not (self.lost or self.in_ksef_twice or self.repeated_outcomes
                    or self.accepted_and_rejected or self.resent_sessions)

    def line(self) -> str:
        return (f"run {self.run}: submitted={self.submitted} accepted={self.accepted} "
                f"rejected={self.rejected} lost={self.lost} in_ksef_twice={self.in_ksef_twice} "
                f"repeated_outcomes={self.repeated_outcomes} "
                f"accepted_and_rejected={self.accepted_and_rejected} "
                f"repeated_rejections={self.repeated_rejections} "
                f"resent_sessions={self.resent_sessions} "
                f"abandoned_sessions={self.abandoned_sessions} settle_s={self.settle_s:.1f} "
                f"seconds={self.seconds:.0f}")


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    console_logs("chaos")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    reports = []
    for run in range(1, args.runs + 1):
        seed = args.seed if args.seed is not None else int(time.time())
        report = _run(args, run, seed + run, stop)
        reports.append(report)
        say(report.line())
        if stop.is_set():
            break
    say("summary: " + "; ".join(r.line() for r in reports))
    return 0 if reports and all(r.clean() and r.lost == 0 for r in reports) else 1


def _run(args: argparse.Namespace, run: int, seed: int, stop: threading.Event) -> Report:
    import shutil

    var = Path(args.var) / f"run-{run}"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    with ExitStack() as stack:
        return _chaos(args, run, seed, var, stack, stop)


def _chaos(args: argparse.Namespace, run: int, seed: int, var: Path, stack: ExitStack,
           stop: threading.Event) -> Report:
    from pipeline.clock import polish_today
    from pipeline.demo.samples import seller_nips
    from pipeline.demo.workload import Ledger, LedgerReader, generate, ingest
    from pipeline.emulator.process import start_emulator
    from pipeline.runtime.keyring_file import init_keyring

    rng = random.Random(seed)
    kafka_dir = var / "kafka"
    bootstrap = stack.enter_context(kafka_broker(kafka_dir))
    kafka, catalog, env = topic_catalog(bootstrap)
    emulator = start_emulator(var / "emulator", cwd=REPO, env=env)
    stack.callback(emulator.stop)
    sellers = seller_nips(args.sellers, seed=seed % 100_000)
    certified = dict(zip(sellers[:2], ("rsa", "ec"), strict=False))
    credentials = emulator.write_credentials(sellers, var / "credentials.json", certified)
    keyring = var / "keyring.json"
    keyring.unlink(missing_ok=True)  # a fresh run, a fresh keyring (`keyring init`)
    init_keyring(keyring)
    env.update(KSEF_ENV="emulator", KSEF_API_URL=emulator.base_url,
               KSEF_CREDENTIALS_FILE=str(credentials), KSEF_KEYRING_FILE=str(keyring),
               KSEF_PACK_LINGER_S="3", KSEF_SPOOL_DIR=str(var / "spool"),
               KSEF_LATARNIA_POLL_S="2", KSEF_MODE_TICK_S="1", KSEF_HOLD_PROBE_S="1")
    workers = [Worker(i, [sys.executable, "-m", "pipeline.cli", "worker", "--web-port",
                          str(free_port()), "--data-dir", str(var / f"worker-{i}")],
                      env, var / f"worker-{i}.log") for i in range(args.workers)]
    for w in workers:
        w.start()
        stack.callback(w.stop)
    say(f"run {run}: {args.invoices} invoices, {len(sellers)} sellers ({len(certified)} on "
        f"certificates), {args.workers} workers, seed {seed}, logs in {var}")

    items = generate(args.invoices, sellers, polish_today(), f"C{run}{seed % 1000:03d}")
    ledger = Ledger({i for i, _, _ in items})
    reader = LedgerReader(kafka, catalog, ledger)
    reader.start()
    stack.callback(reader.stop)
    report = Report(run, len(items))
    started = time.monotonic()
    waves = 15
    size = -(-len(items) // waves)

    def feed() -> None:
        for n in range(waves):
            if stop.is_set():
                return
            ingest(items[n * size:(n + 1) * size], kafka, catalog)
            stop.wait(args.span / waves)

    feeder = threading.Thread(target=feed, daemon=True, name="feed")
    feeder.start()
    faults = _schedule(args, rng)
    last_fault = started
    restarts = {"broker": 0}
    shown = 0.0

    def broker_restart() -> None:
        say("fault: broker restart (stop, then start on the same data and ports)")
        env_k = {**os.environ, "KAFKA_RUN_DIR": str(kafka_dir)}
        subprocess.run([str(REPO / "ops/kafka/stop")], env=env_k, check=False,
                       stdout=subprocess.DEVNULL)
        stop.wait(3)
        subprocess.run([str(REPO / "ops/kafka/start")], env=env_k, check=True,
                       stdout=subprocess.DEVNULL)
        restarts["broker"] += 1

    while not stop.is_set():
        now = time.monotonic() - started
        while faults and faults[0][0] <= now:
            _, kind = faults.pop(0)
            report.faults.append(kind)
            say(f"{now:6.1f} s, {ledger.settled}/{len(items)} accounted for:")
            if kind == "kill":
                victim = rng.choice([w for w in workers if w.alive()] or workers)
                say(f"fault: SIGKILL worker {victim.index} at {now:.0f} s")
                victim.kill()
            elif kind == "broker":
                broker_restart()
            else:
                say(f"fault: KSeF {kind} storm for 8 s")
                _storm(emulator, kind, stop)
            last_fault = time.monotonic()
        for w in workers:
            if not w.alive():
                code = w.proc.returncode if w.proc else None
                say(f"worker {w.index} is down (exit {code}); starting it again")
                w.start()
        if now - shown >= 10:
            shown = now
            say(f"{now:6.1f} s  accounted {ledger.settled}/{len(items)}")
        if ledger.done() and not faults:
            break
        if now > args.timeout:
            say(f"timed out after {args.timeout:.0f} s")
            break
        time.sleep(EVENT_POLL_S)
    settled_at = time.monotonic()
    report.seconds = settled_at - started
    report.settle_s = max(0.0, settled_at - last_fault)
    stop.wait(10)  # late repeats of a record would show up now
    _count(report, ledger, kafka, catalog, emulator.data_dir)
    return report


def _schedule(args: argparse.Namespace, rng: random.Random) -> list[tuple[float, str]]:
    """Fault times spread over the span in which invoices arrive, one fault per slot at a
    random point of it, so that each meets invoices being validated, packed, uploaded
    and settled."""
    kinds = (["kill"] * args.kills + ["broker"] * args.broker_restarts
             + [("503", "429", "lost")[i % 3] for i in range(args.storms)])
    rng.shuffle(kinds)
    slot = (args.span - 10.0) / max(1, len(kinds))
    return [(10.0 + slot * (i + rng.random() * 0.8), kind) for i, kind in enumerate(kinds)]


def _storm(emulator: Any, kind: str, stop: threading.Event) -> None:
    if kind in ("503", "429"):
        emulator.admin("down", {"mode": kind})
        stop.wait(8)
        emulator.admin("up")
        return
    for path in ("/v2/sessions/batch/*/close", "/v2/sessions/batch", "/upload/*",
                 "/v2/sessions/*/invoices"):
        emulator.admin("lose-response", {"path": path, "count": 2})
    stop.wait(8)


def _count(report: Report, ledger: Any, kafka: Any, catalog: Any, emulator_dir: Path) -> None:
    import asyncio

    from pipeline.runtime.topic_reads import read_all
    from topics import topic_name
    from topics.catalog import OUTCOMES, REJECTED, SESSIONS
    from topics.records import InvoiceOutcome, Rejection, SessionStep

    with ledger.lock:
        report.accepted = len(ledger.expected & ledger.accepted.keys())
        report.rejected = len(ledger.expected & (ledger.rejected.keys() - ledger.accepted.keys()))
        report.reasons = Counter(r for i, r in ledger.rejected.items()
                                 if i in ledger.expected and i not in ledger.accepted)
        report.lost = len(ledger.expected - ledger.accepted.keys() - ledger.rejected.keys())
    outcomes = asyncio.run(read_all(kafka, topic_name(OUTCOMES, catalog), InvoiceOutcome))
    per_id = Counter(o.invoice_id for o in outcomes)
    report.repeated_outcomes = sum(n - 1 for n in per_id.values())
    rejections = asyncio.run(read_all(kafka, topic_name(REJECTED, catalog), Rejection))
    refused = Counter(r.invoice_id for r in rejections)
    report.repeated_rejections = sum(n - 1 for n in refused.values())
    report.accepted_and_rejected = len(per_id.keys() & refused.keys())
    steps = asyncio.run(read_all(kafka, topic_name(SESSIONS, catalog), SessionStep))
    # A batch closed in two sessions was sent twice; an `opening` repeated after a 429
    # or a lost answer is not (KSeF got no package in it).
    closings = Counter(s.batch_id for s in steps if s.step == "closed" and s.kind == "batch")
    twice_closed = sum(n - 1 for n in closings.values() if n > 1)
    db = sqlite3.connect(f"file:{emulator_dir}/emulator.sqlite3?mode=ro", uri=True)
    try:
        report.in_ksef_twice = db.execute(
            "SELECT COUNT(*) FROM (SELECT invoice_hash FROM invoices WHERE status_code = 200 "
            "GROUP BY invoice_hash HAVING COUNT(*) > 1)").fetchone()[0]
        resent = db.execute("SELECT COUNT(DISTINCT session) FROM invoices "
                            "WHERE status_code = 440").fetchone()[0]
        report.abandoned_sessions = db.execute(
            "SELECT COUNT(*) FROM sessions WHERE kind = 'Batch' AND closed IS NULL"
        ).fetchone()[0]
    finally:
        db.close()
    report.resent_sessions = max(resent, twice_closed)
    if report.reasons:
        say(f"rejections: {dict(report.reasons)}")


if __name__ == "__main__":
    sys.exit(main())
