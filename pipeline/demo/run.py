"""`ops/demo`: the main job on embedded defaults.

Starts a local Kafka broker (ops/kafka), the topic catalog, the KSeF emulator with a
token per seller, and the worker(s); generates realistic FA(3) invoices, ingests them,
shows live progress per stage and ends with one summary line:
`submitted=N accepted=A rejected=R seconds=S invoices_per_s=X`.
Ctrl-C, SIGTERM, SIGHUP or the reader of its output going away (`ops/demo | head`) stops
everything it started, so runs never meet a stale broker or a taken port.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from pipeline import stopping
from pipeline.bearer import write_token_file
from pipeline.demo.processes import console_logs, free_port, process, say
from pipeline.runtime.recovery_watch import RECOVERY_STALLED_EXIT

REPO = Path(__file__).resolve().parents[2]


def _kafka_script(name: str, env: dict[str, str], *args: str, **kwargs: Any
                  ) -> subprocess.CompletedProcess[str]:
    # Its own session: a second Ctrl-C on the terminal must not cut a stop in half, and
    # the broker it starts is stopped by us, in order, after the workers.
    return subprocess.run([str(REPO / "ops/kafka" / name), *args], env=env, text=True,
                          start_new_session=True, **kwargs)


def topic_catalog(bootstrap: str) -> tuple[Any, Any, dict[str, str]]:
    """Create the topic catalog (8 partitions, no prefix) on a local cluster; its Kafka
    and catalog settings and the environment the run's processes get."""
    from pipeline.runtime.settings import KafkaSettings
    from topics import CatalogSettings

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1",
           "KSEF_TOPIC_PREFIX": "", "KSEF_TOPIC_PARTITIONS": "8"}
    subprocess.run([sys.executable, "-m", "pipeline.cli", "topics", "create"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return KafkaSettings(bootstrap_servers=bootstrap), CatalogSettings(partitions=8), env


@contextmanager
def kafka_broker(run_dir: Path) -> Iterator[str]:
    env = {**os.environ, "KAFKA_RUN_DIR": str(run_dir)}
    # a previous run killed hard leaves a pid file
    _kafka_script("stop", env, check=False, stderr=subprocess.DEVNULL)
    try:
        # --fresh: every run starts on an empty cluster (ops/kafka/start alone keeps the data)
        out = _kafka_script("start", env, "--fresh", check=True, stdout=subprocess.PIPE)
        yield out.stdout.strip().splitlines()[-1]
    finally:  # also when the start failed half-way: stop reads the pid file it wrote
        _kafka_script("stop", env, check=False, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
        say("Kafka stopped")


def kafka_pids(run_dir: Path) -> list[int]:
    """The broker JVMs of a run dir, from the pid files ops/kafka/start writes."""
    out = []
    for path in [run_dir / "pid", *sorted(run_dir.glob("node-*/pid"))]:
        with suppress(FileNotFoundError, ValueError):
            out.append(int(path.read_text().strip()))
    return out


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ops/demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--invoices", type=int, default=2000, help="sample invoices (default 2000)")
    p.add_argument("--sellers", type=int, default=3, help="seller contexts (default 3)")
    p.add_argument("--bad", type=int, default=0, metavar="N",
                   help="also send N defective invoices (broken XML, schema errors, wrong "
                        "NIPs, duplicate numbers ...): each must end with a rejection")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--exit-when-done", action="store_true",
                   help="stop once every invoice has an outcome or a rejection; exit 0 only "
                        "if all are accounted for")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="with --exit-when-done: give up after this many seconds (default 900)")
    p.add_argument("--linger", type=float, default=5.0,
                   help="seconds a batch waits for more invoices (default 5)")
    p.add_argument("--var", default=str(REPO / "var/demo"), help="state and logs directory")
    p.add_argument("--outage", action="store_true",
                   help="rehearse an outage: KSeF down and a failure announced while the "
                        "invoices arrive, then the end announced and the backlog drained")
    p.add_argument("--observe", action="store_true",
                   help="also start Prometheus (Debian package `prometheus`) on 127.0.0.1, "
                        "scraping every worker's /metrics, and print its URL; state in "
                        "<var>/prometheus/, log <var>/prometheus.log")
    p.add_argument("--warm-up", type=int, default=0, metavar="N",
                   help="first run N other invoices through the stack and wait for all of "
                        "them, untimed: the broker's JVM compiles its hot code in its first "
                        "tens of seconds, which a broker that has been running for days no "
                        "longer pays (for ops/bench e2e; default 0)")
    p.add_argument("--usage-out", metavar="PATH",
                   help="write the CPU ms the workers, the broker and the emulator used from "
                        "the start of ingest to the last outcome, and the workers' peak RSS "
                        "then, to PATH as JSON (for ops/bench e2e)")
    return p.parse_args(argv)


def _should_stop(stop: dict[str, bool]) -> bool:
    """A stop signal came, or the reader of our output (`ops/demo | head`) went away."""
    if stopping.output_gone():
        stop["requested"] = True
    return stop["requested"]


def _progress_line(counts: dict[str, int], settled: int, total: int, seconds: float) -> str:
    stages = " | ".join(f"{k} {v}" for k, v in counts.items())
    return f"[demo] {seconds:6.1f}s  {stages} | accounted {settled}/{total}"


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    console_logs("demo")
    var = Path(args.var)
    if args.observe:
        from pipeline.demo.observe import INSTALL_HINT, prometheus_binary

        if prometheus_binary() is None:
            print(f"ops/demo: {INSTALL_HINT}", file=sys.stderr)
            return 2
    stop = {"requested": False}

    def on_signal(_signum: int) -> None:
        stop["requested"] = True

    stopping.on_stop_signals(on_signal)
    # The broker starts empty every time, so state kept beside it must go too: a worker's
    # duplicate table (RocksDB) refuses changelog offsets the new cluster never had.
    stale = [var / "emulator", var / "spool", *(p for p in var.glob("worker-*") if p.is_dir())]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    with ExitStack() as stack:
        return _run(args, var, stack, stop)


def _run(args: argparse.Namespace, var: Path, stack: ExitStack, stop: dict[str, bool]) -> int:
    from pipeline.demo.samples import seller_nips
    from pipeline.demo.workload import Ledger, LedgerReader, StageCounter, generate, ingest
    from pipeline.emulator.process import start_emulator
    from pipeline.runtime.keyring_file import init_keyring

    bootstrap = stack.enter_context(kafka_broker(var / "kafka"))
    if _should_stop(stop):
        return 130
    kafka, catalog, env = topic_catalog(bootstrap)
    say(f"Kafka {os.environ.get('KAFKA_VERSION', '3.9.1')} at {bootstrap} "
        f"(logs {var / 'kafka'}); topic catalog created")

    emulator = start_emulator(var / "emulator", cwd=REPO, env=env)
    stack.callback(lambda: say(f"KSeF emulator stopped (exit code {emulator.stop()})"))
    if _should_stop(stop):
        return 130
    say(f"KSeF emulator at {emulator.api_url} (Latarnia {emulator.base_url}/latarnia)")
    sellers = seller_nips(args.sellers, seed=int(time.time()) % 100_000)
    # From 2027-01-01 KSeF takes only certificate logins: the demo's main job signs in
    # with an RSA and an ECDSA certificate (self-signed, as KSeF TEST accepts) beside
    # sellers still on a KSeF token.
    certified = dict(zip(sellers[:2], ("rsa", "ec"), strict=False))
    credentials = emulator.write_credentials(sellers, var / "credentials.json", certified)
    # The demo's own keyring in its state directory, made as an operator would
    # (`ksef-pipeline keyring init`); workers never generate one.
    keyring = var / "keyring.json"
    if not keyring.exists():
        init_keyring(keyring)
    # The operator endpoint (POST /ksef/announcements) needs a bearer token: the demo's
    # own, in a 0600 file of its state dir, so an operator can try it on this stack.
    operator_tokens = var / "operator-token"
    write_token_file(operator_tokens, name="demo-operator")
    env.update(KSEF_ENV="emulator", KSEF_API_URL=emulator.base_url,
               KSEF_OPERATOR_TOKEN_FILE=str(operator_tokens),
               KSEF_CREDENTIALS_FILE=str(credentials), KSEF_KEYRING_FILE=str(keyring),
               KSEF_PACK_LINGER_S=str(args.linger), KSEF_SPOOL_DIR=str(var / "spool"),
               KSEF_LATARNIA_POLL_S="1", KSEF_LATARNIA_UNREACHABLE_AFTER_S="5",
               KSEF_MODE_TICK_S="1", KSEF_HOLD_PROBE_S="1")
    say(f"{len(sellers)} seller contexts in {credentials}: "
        f"{len(certified)} with a certificate (XAdES), {len(sellers) - len(certified)} "
        "with a KSeF token")

    procs, cmds, ports = [], [], []
    for i in range(args.workers):
        port = free_port()
        ports.append(port)
        cmds.append([sys.executable, "-m", "pipeline.cli", "worker", "--web-port", str(port),
                     "--data-dir", str(var / f"worker-{i}")])
        procs.append(stack.enter_context(
            process(f"worker {i}", cmds[i], env, var / f"worker-{i}.log")))
        say(f"worker {i}: http://127.0.0.1:{port}/  log {var / f'worker-{i}.log'}")
    say(f"operator token (announcements): {operator_tokens}; try `ksef-pipeline announce "
        f"failure --start <ISO> --worker <worker URL> --token-file {operator_tokens}`")
    if args.observe:
        from pipeline.demo.observe import prometheus, prometheus_binary

        try:
            prom = stack.enter_context(prometheus(prometheus_binary() or "prometheus", var,
                                                  ports, env))
        except RuntimeError as exc:  # it exited, or never answered /-/ready
            say(str(exc))
            return 1
        say(f"Prometheus at {prom.url} (config {prom.config}, log {prom.log})")
    if _should_stop(stop):
        return 130

    rehearsal = None
    if args.outage:
        rehearsal = OutageRehearsal(emulator, kafka, catalog, stop)
        stack.callback(rehearsal.close)
        rehearsal.begin()
    run_id = time.strftime("%H%M%S")
    if args.warm_up > 0 and not _warm_up(args.warm_up, sellers, kafka, catalog, stop,
                                          args.timeout, f"{run_id}w"):
        return 1
    say(f"generating {args.invoices} FA(3) invoices for {len(sellers)} sellers"
        + (f" and {args.bad} defective ones" if args.bad else "") + " ...")
    items = generate(args.invoices, sellers, _polish_today(), run_id, bad=args.bad)
    if rehearsal is not None:
        rehearsal.narrate(len(items))
    ledger = Ledger({i for i, _, _ in items})
    reader = LedgerReader(kafka, catalog, ledger)
    reader.start()
    stack.callback(reader.stop)
    counter = StageCounter(kafka, catalog)
    stack.callback(counter.close)
    usage = None
    if args.usage_out:
        from pipeline.bench.proc_usage import RunUsage

        usage = RunUsage(lambda: {"workers": [p.pid for p in procs],
                                  "broker": kafka_pids(var / "kafka"),
                                  "emulator": [emulator.proc.pid]})
        usage.start()
    started = time.monotonic()
    ingest_s = ingest(items, kafka, catalog)
    say(f"ingested {len(items)} invoices in {ingest_s:.1f} s "
        f"({len(items) / max(ingest_s, 1e-9):,.0f}/s)")

    last = 0.0
    while not _should_stop(stop):
        elapsed = time.monotonic() - started
        if elapsed - last >= 2.0 or ledger.done():
            last = elapsed
            line = _progress_line(counter.counts(), ledger.settled, len(items), elapsed)
            if not stopping.say(line):
                break  # the reader of our output went away: stop what we started
        if ledger.done():
            break
        if args.exit_when_done and elapsed > args.timeout:
            say(f"timed out after {args.timeout:.0f} s")
            break
        exited = next(((i, p.returncode) for i, p in enumerate(procs) if p.poll() is not None),
                      None)
        if exited is not None and exited[1] == RECOVERY_STALLED_EXIT:
            i = exited[0]  # it asks to be started again (see pipeline/runtime/recovery_watch.py)
            say(f"worker {i} exited with {RECOVERY_STALLED_EXIT} (its table recovery "
                "stalled); starting it again")
            procs[i] = stack.enter_context(
                process(f"worker {i}", cmds[i], env, var / f"worker-{i}.log"))
        elif exited is not None:
            say(f"worker {exited[0]} exited with {exited[1]}; see its log")
            break
        time.sleep(0.25)
    seconds = time.monotonic() - started
    with ledger.lock:
        accepted = len(ledger.expected & ledger.accepted.keys())
        rejected = len(ledger.expected & (ledger.rejected.keys() - ledger.accepted.keys()))
    if usage is not None:  # before anything stops: the workers' peak RSS is read here too
        report = {**usage.finish(peak_rss_of="workers"), "invoices": len(items),
                  "settled": accepted + rejected}
        Path(args.usage_out).write_text(json.dumps(report))
    stopping.say(f"submitted={len(items)} accepted={accepted} rejected={rejected} "
                 f"seconds={seconds:.1f} invoices_per_s={(accepted + rejected) / seconds:.1f}")
    if rejected:
        stopping.say("rejected by reason: " + " ".join(
            f"{reason}={n}" for reason, n in sorted(ledger.rejection_reasons().items())))
    complete = accepted + rejected == len(items)
    if args.exit_when_done:
        return 0 if complete else 1
    say("all invoices accounted for; still running, Ctrl-C stops everything" if complete
        else "stopping")
    while complete and not _should_stop(stop):
        time.sleep(0.2)
    return 0 if complete else 1


def _warm_up(count: int, sellers: list[str], kafka: Any, catalog: Any,
             stop: dict[str, bool], timeout: float, run_id: str) -> bool:
    """Run `count` invoices of their own through the stack and wait for every one: what
    follows is measured on a broker (and worker) past their start-up."""
    from pipeline.demo.workload import Ledger, LedgerReader, generate, ingest

    items = generate(count, sellers, _polish_today(), run_id)
    ledger = Ledger({i for i, _, _ in items})
    reader = LedgerReader(kafka, catalog, ledger)
    reader.start()
    try:
        started = time.monotonic()
        ingest(items, kafka, catalog)
        while not ledger.done():
            if _should_stop(stop) or time.monotonic() - started > timeout:
                say(f"warm-up: {ledger.settled}/{count} accounted for; giving up")
                return False
            time.sleep(0.25)
        say(f"warm-up: {count} invoices accounted for in {time.monotonic() - started:.1f} s "
            "(not measured)")
        return True
    finally:
        reader.stop()


def _deadline_text(summary: dict[tuple[str, str | None], int]) -> str:
    parts = []
    for (status, due), count in sorted(summary.items(), key=str):
        when = due or "no date yet (the failure has no announced end)"
        parts.append(f"{count} {status} {when}")
    return ", ".join(parts) or "none yet"


class OutageRehearsal:
    """Narrates an outage: KSeF down and a failure announced before the invoices arrive;
    once all of them are pending with an open deadline, the end is announced, then KSeF
    comes back and the backlog drains."""

    def __init__(self, emulator: Any, kafka: Any, catalog: Any, stop: dict[str, bool]) -> None:
        from pipeline.demo.workload import DeadlineView

        self.emulator = emulator
        self.view = DeadlineView(kafka, catalog)
        self.stop = stop
        self.expected = 0

    def begin(self) -> None:
        self.view.start()
        time.sleep(3)  # the workers read KSeF's state and the MF key while it is up
        self.emulator.admin("down", {"mode": "503"})
        self.emulator.admin("latarnia/announce", {"category": "FAILURE"})
        say("OUTAGE: KSeF API down (503) and a FAILURE announced on Latarnia; invoices are "
            "validated, sealed in emergency mode and packed, but no session opens")

    def narrate(self, expected: int) -> None:
        import threading

        self.expected = expected
        threading.Thread(target=self._run, daemon=True, name="narrator").start()

    def _run(self) -> None:
        last: dict[tuple[str, str | None], int] = {}
        while not self.stop["requested"]:
            summary = self.view.summary()
            if summary != last:
                say(f"deadlines: {_deadline_text(summary)}")
                last = summary
            if {k[0] for k in summary} == {"open"} and sum(summary.values()) >= self.expected:
                break
            time.sleep(1)
        self.emulator.admin("latarnia/end", {"event": "1"})
        say("the FAILURE's end is announced: every pending deadline becomes 7 business days "
            "after it")
        time.sleep(5)
        say(f"deadlines now: {_deadline_text(self.view.summary())}")
        self.emulator.admin("up")
        say("KSeF answers again: the backlog drains in full batches, earliest deadline first")

    def close(self) -> None:
        self.view.stop()


def _polish_today() -> Any:
    from pipeline.clock import polish_today

    return polish_today()


if __name__ == "__main__":
    sys.exit(main())
