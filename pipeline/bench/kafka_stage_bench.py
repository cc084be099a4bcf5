"""The validate stage through Kafka: invoices/s of a real worker on a real broker.

A throwaway broker runs in a temporary KAFKA_RUN_DIR. Each corpus gets its own topic
prefix (so its own copy of the catalog) and is ingested completely before a fresh
`ksef-pipeline worker --stages validate` starts, so the worker meets a backlog and the
figure is the stage's own pace, not the producer's. The rate is taken from the broker
timestamps of the stage's output records (`ksef.invoices.sealed`: the validate stage seals
too): records between the first and the last one, divided by that interval.
Worker start-up (Faust, group join, schema compile) is reported apart.

Faust reads every setting from an environment variable of the same name in capitals,
which wins over `pipeline/runtime/app.py` (PRODUCER_LINGER, PRODUCER_MAX_BATCH_SIZE,
BROKER_MAX_POLL_RECORDS, ...), so `--env NAME=VALUE` tries a setting without editing code.

    python -m pipeline.bench.kafka_stage_bench [--profile typical] [--count 4000]
        [--stages validate|validate,seal] [--env NAME=VALUE ...] [--py-spy OUT.txt]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from pipeline.bench.machine import exit_on_sigterm
from pipeline.bench.validate_bench import corpus
from pipeline.clock import polish_today
from pipeline.demo.processes import free_port, process
from pipeline.demo.run import kafka_broker
from pipeline.runtime.invoice_producer import InvoiceProducer
from pipeline.runtime.settings import KafkaSettings
from pipeline.runtime.topic_admin import reconcile
from topics import CatalogSettings, TopicSpec, topic_name
from topics.catalog import REJECTED, SEALED
from topics.sealed import read_meta

PARTITIONS = 8
DEFAULT_COUNTS = {"small": 4000, "typical": 4000, "large": 200}


@dataclass(frozen=True)
class StageRun:
    """What one worker did with one corpus."""

    profile: str
    stages: str
    invoices: int
    passed: int
    rejected: int
    repeats: int  # records of an invoice already seen (redelivered after a rebalance)
    per_s: float  # passed records between the first and last output record, per second
    first_to_last_s: float
    startup_s: float  # worker launch to its first output record
    workers: int
    worker_cores: float  # workers' CPU seconds per second while they drained the backlog
    worker_cpu_ms: float  # workers' CPU per invoice drained: less load-dependent than per_s
    ingest_per_s: float


def span_rate(timestamps_ms: Sequence[int]) -> tuple[float, float]:
    """(records per second, seconds) between the first and the last timestamp.

    n records span n - 1 gaps; fewer than two records or a zero span give no rate.
    """
    if len(timestamps_ms) < 2:
        return 0.0, 0.0
    seconds = (max(timestamps_ms) - min(timestamps_ms)) / 1000
    return ((len(timestamps_ms) - 1) / seconds if seconds > 0 else 0.0), seconds


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """`NAME=VALUE` strings as a mapping; a pair without `=` is an error, not ignored."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--env expects NAME=VALUE, got {pair!r}")
        out[name] = value
    return out


@contextlib.contextmanager
def throwaway_broker(workdir: Path) -> Iterator[KafkaSettings]:
    """A single-node broker for one benchmark; its say() lines go to stderr."""
    with contextlib.redirect_stdout(sys.stderr), kafka_broker(workdir / "kafka") as bootstrap:
        yield KafkaSettings(bootstrap_servers=bootstrap)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class OutputTally:
    """Distinct invoices seen on the output and rejection topics.

    A rebalance (several workers) redelivers records, so an invoice can come out twice;
    only its first appearance counts towards the rate, the rest are `repeats`.
    """

    stamps: list[int] = field(default_factory=list)  # broker ms of each first appearance
    passed: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    repeats: int = 0

    def add(self, invoice_id: str, timestamp_ms: int, *, rejection: bool) -> None:
        if invoice_id in self.passed or invoice_id in self.rejected:
            self.repeats += 1
            return
        (self.rejected if rejection else self.passed).add(invoice_id)
        if not rejection:
            self.stamps.append(timestamp_ms)

    @property
    def settled(self) -> int:
        return len(self.passed) + len(self.rejected)


def _invoice_id(spec: TopicSpec, key: bytes | None, value: bytes | None) -> str:
    """`.sealed` is keyed by seller NIP: its invoice id is in the value."""
    if spec is SEALED:
        return read_meta(value or b"").invoice_id
    return (key or b"").decode("utf-8", "replace")


def _tally_outputs(kafka: KafkaSettings, catalog: CatalogSettings, output: TopicSpec,
                   expected: int, timeout_s: float, on_first: Callable[[], None]
                   ) -> OutputTally:
    """Read the output and rejection topics until every invoice came out once."""
    names = {topic_name(output, catalog): output, topic_name(REJECTED, catalog): REJECTED}
    consumer = Consumer(kafka.confluent(**{
        "group.id": f"bench-{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "fetch.max.bytes": 64 * 1024 * 1024, "log_level": 3}))
    consumer.subscribe(list(names))
    tally = OutputTally()
    deadline = time.monotonic() + timeout_s
    try:
        while tally.settled < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(tally.passed)} passed + {len(tally.rejected)} "
                                   f"rejected of {expected} invoices after {timeout_s:.0f} s")
            for msg in consumer.consume(1000, 0.5):
                if msg.error() or msg.topic() is None:
                    continue
                if not tally.settled:
                    on_first()
                spec = names[str(msg.topic())]
                tally.add(_invoice_id(spec, msg.key(), msg.value()), msg.timestamp()[1],
                          rejection=spec is REJECTED)
    finally:
        consumer.close()
    return tally


class DrainWatch:
    """Watches the workers from the first output record on: CPU used, optional py-spy.

    Starting there leaves worker start-up (imports, group join) out of both figures.
    """

    def __init__(self, pids: Sequence[int], py_spy_out: Path | None,
                 py_spy_options: Sequence[str] = ()) -> None:
        self.pids = list(pids)
        self._py_spy_out = py_spy_out
        self._py_spy_options = list(py_spy_options)
        self._spy: subprocess.Popen[bytes] | None = None
        self._started: tuple[float, float] | None = None  # (monotonic, worker CPU seconds)

    def _cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def first_output(self) -> None:
        """Start the clocks; py-spy samples the first worker."""
        self._started = (time.monotonic(), self._cpu())
        if self._py_spy_out is not None:
            spy_bin = Path(sys.executable).with_name("py-spy")
            self._spy = subprocess.Popen(
                [str(spy_bin), "record", "--format", "raw", "--threads", "--nonblocking",
                 "-r", "100", *self._py_spy_options, "-p", str(self.pids[0]),
                 "-o", str(self._py_spy_out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def done(self) -> tuple[float, float]:
        """Worker (CPU seconds, wall seconds) since the first output record."""
        if self._spy is not None:
            self._spy.send_signal(signal.SIGINT)
            self._spy.wait(60)
        if self._started is None:
            return 0.0, 0.0
        return self._cpu() - self._started[1], time.monotonic() - self._started[0]


def run_stage(kafka: KafkaSettings, workdir: Path, profile: str,
              invoices: Sequence[tuple[str, bytes]], *, stages: str = "validate",
              extra_env: Mapping[str, str] | None = None, py_spy: Path | None = None,
              py_spy_options: Sequence[str] = (), modules: Sequence[str] = (),
              workers: int = 1, timeout_s: float = 600.0) -> StageRun:
    """Ingest `invoices` on a fresh topic prefix, then time `workers` draining them.

    Several workers start together, so their group's first rebalance falls inside the
    measured interval.

    `modules` are extra modules registering agents (`worker --module`), e.g. a variant of
    a stage tried with `stages=""`.
    """
    catalog = CatalogSettings(partitions=PARTITIONS, prefix=f"bench{uuid.uuid4().hex[:6]}.")
    reports = reconcile(AdminClient(kafka.confluent()), catalog, create=True)
    if any(r.status not in ("created", "ok") for r in reports):
        raise RuntimeError(f"topic catalog not created: {reports}")
    started = time.monotonic()
    with InvoiceProducer(kafka, catalog) as producer:
        for invoice_id, xml in invoices:
            producer.send(invoice_id, xml, source="bench")
    ingest_per_s = len(invoices) / (time.monotonic() - started)

    keyring = {"active": "k1", "keys": {"k1": base64.b64encode(os.urandom(32)).decode()}}
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "KSEF_TOPIC_PREFIX": catalog.prefix, "KSEF_TOPIC_PARTITIONS": str(PARTITIONS),
           "KSEF_APP_ID": f"bench-{catalog.prefix.rstrip('.')}",
           "KSEF_KEYRING": json.dumps(keyring), "PYTHONUNBUFFERED": "1", "KSEF_ENV": "emulator",
           **(extra_env or {})}
    env.pop("KSEF_KEYRING_FILE", None)  # the file would win over this run's own keyring
    output = SEALED
    launched = time.time()
    with contextlib.redirect_stdout(sys.stderr), contextlib.ExitStack() as stack:
        pids = []
        for n in range(workers):
            worker_dir = workdir / f"worker-{catalog.prefix.rstrip('.')}-{n}"
            cmd = [sys.executable, "-m", "pipeline.cli", "worker", "--stages", stages,
                   "--web-port", str(free_port()), "--data-dir", str(worker_dir),
                   *(f"--module={module}" for module in modules)]
            pids.append(stack.enter_context(process(
                f"{stages} worker {n}", cmd, env, worker_dir / "worker.log")).pid)
        watch = DrainWatch(pids, py_spy, py_spy_options)
        tally = _tally_outputs(kafka, catalog, output, len(invoices), timeout_s,
                               on_first=watch.first_output)
        cpu, wall = watch.done()
    per_s, seconds = span_rate(tally.stamps)
    return StageRun(
        profile=profile, stages=stages, invoices=len(invoices), passed=len(tally.passed),
        rejected=len(tally.rejected), repeats=tally.repeats, per_s=round(per_s, 1),
        first_to_last_s=round(seconds, 2), workers=workers,
        startup_s=round(min(tally.stamps) / 1000 - launched, 2) if tally.stamps else 0.0,
        worker_cores=round(cpu / wall, 2) if wall > 0 else 0.0,
        worker_cpu_ms=round(1000 * cpu / max(tally.settled - 1, 1), 2),
        ingest_per_s=round(ingest_per_s, 1))


def bench_corpus(profile: str, count: int) -> list[tuple[str, bytes]]:
    """`count` valid invoices of `profile` dated today (the worker checks against today)."""
    return [(f"bench-{profile}-{i:06d}", xml)
            for i, xml in enumerate(corpus(profile, count, day=polish_today()))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", choices=tuple(DEFAULT_COUNTS),
                        help="corpus profile (repeatable; default typical)")
    parser.add_argument("--count", type=int, help="invoices per corpus (default per profile)")
    parser.add_argument("--stages", default="validate", help="worker stages (default validate)")
    parser.add_argument("--module", action="append", default=[],
                        help="extra worker module registering agents (with --stages '' "
                             "to run a variant of a stage instead of it)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra worker environment, e.g. PRODUCER_LINGER=0.005")
    parser.add_argument("--py-spy", type=Path, help="write py-spy raw stacks of the worker")
    parser.add_argument("--py-spy-option", action="append", default=[],
                        help="extra py-spy record option, e.g. --py-spy-option=--gil")
    parser.add_argument("--json", action="store_true", help="one JSON object per corpus")
    args = parser.parse_args(argv)
    extra_env = parse_env(args.env)
    exit_on_sigterm()
    stdout = sys.stdout  # the broker's and worker's chatter goes to stderr
    with tempfile.TemporaryDirectory(prefix="kafka-stage-bench-") as tmp, \
            throwaway_broker(Path(tmp)) as kafka:
        for profile in args.profile or ["typical"]:
            invoices = bench_corpus(profile, args.count or DEFAULT_COUNTS[profile])
            result = run_stage(kafka, Path(tmp), profile, invoices, stages=args.stages,
                               extra_env=extra_env, py_spy=args.py_spy,
                               py_spy_options=args.py_spy_option, modules=args.module,
                               workers=args.workers)
            fields = asdict(result)
            print(json.dumps(fields) if args.json
                  else " ".join(f"{k}={v}" for k, v in fields.items()), file=stdout,
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
