"""`ops/bench dedupe`: what the duplicate table costs a pack worker at start.

KSeF keeps invoice numbers unique for ten years, so the table only grows. The benchmark
fills the table's changelog with `--numbers` records (as years of validated invoices
would leave it), then starts a `--stages pack` worker with each store and reports
the seconds from process start to Faust's "Recovery complete" and the worker's resident
memory then; the RocksDB worker is restarted on its data dir once more, as a real
restart would be.

    python -m pipeline.bench dedupe [--numbers 1000000] [--json]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.bench.kafka_stage_bench import throwaway_broker
from pipeline.bench.machine import load_note
from pipeline.demo.processes import free_port, process
from pipeline.demo.samples import seller_nips
from pipeline.runtime.keyring_file import init_keyring
from pipeline.runtime.settings import KafkaSettings
from pipeline.runtime.topic_admin import reconcile
from pipeline.stages.s2_pack.duplicates import uniqueness_key
from topics import CatalogSettings

PARTITIONS = 8
READY = "Recovery complete"


@dataclass(frozen=True)
class StoreRun:
    store: str
    start: str  # first (empty data dir) | restart (same data dir)
    numbers: int
    recovery_s: float
    rss_mb: float


def fill_changelog(kafka: KafkaSettings, topic: str, numbers: int) -> None:
    """`numbers` table entries, spread over the partitions like real ones."""
    admin = AdminClient(kafka.confluent())
    new = NewTopic(topic, PARTITIONS, 1, config={"cleanup.policy": "compact"})
    admin.create_topics([new])[topic].result(60)
    sellers = seller_nips(50, seed=5)
    producer = Producer(kafka.confluent(**{"enable.idempotence": True, "acks": "all",
                                           "linger.ms": 20, "compression.type": "lz4",
                                           "queue.buffering.max.messages": 1_000_000}))
    for i in range(numbers):
        seller = sellers[i % len(sellers)]
        key = uniqueness_key(seller, "VAT", f"FV/{i:07d}/2026").encode()
        digest = base64.b64encode(hashlib.sha256(key).digest()).decode()
        value = f"INV-{i:09d} {digest}".encode()
        while True:
            try:
                producer.produce(topic, key=key, value=value, partition=i % PARTITIONS)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError("changelog records still undelivered after 120 s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_and_measure(env: dict[str, str], data_dir: Path, timeout_s: float
                      ) -> tuple[float, float]:
    """(seconds to recovery, RSS MB then) of one pack worker, stopped afterwards."""
    log_path = data_dir / "worker.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    cmd = [sys.executable, "-m", "pipeline.cli", "worker", "--stages", "pack",
           "--web-port", str(free_port()), "--data-dir", str(data_dir)]
    started = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr), \
            process("pack worker", cmd, env, log_path) as proc:
        while READY.encode() not in log_path.read_bytes()[offset:]:
            if proc.poll() is not None or time.monotonic() - started > timeout_s:
                raise RuntimeError(f"worker never recovered; see {log_path}")
            time.sleep(0.1)  # a log file offers no event to wait on
        return time.monotonic() - started, rss_mb(proc.pid)


def run(numbers: int, timeout_s: float) -> list[StoreRun]:
    runs: list[StoreRun] = []
    with tempfile.TemporaryDirectory(prefix="dedupe-bench-") as tmp, \
            throwaway_broker(Path(tmp)) as kafka:
        for store in ("memory", "rocksdb"):
            catalog = CatalogSettings(partitions=PARTITIONS,
                                      prefix=f"bench{uuid.uuid4().hex[:6]}.")
            reconcile(AdminClient(kafka.confluent()), catalog, create=True)
            app_id = f"bench-{catalog.prefix.rstrip('.')}"
            # `worker --stages pack` runs in the group (and app id) APP_ID-pack
            fill_changelog(kafka, f"{app_id}-pack-ksef-dedupe-changelog", numbers)
            env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                   "KSEF_TOPIC_PREFIX": catalog.prefix,
                   "KSEF_TOPIC_PARTITIONS": str(PARTITIONS), "KSEF_APP_ID": app_id,
                   "KSEF_DEDUPE_STORE": store, "PYTHONUNBUFFERED": "1",
                   "KSEF_ENV": "emulator"}
            keyring = Path(tmp) / "keyring.json"
            if not keyring.exists():
                init_keyring(keyring)  # workers never generate one
            env["KSEF_KEYRING_FILE"] = str(keyring)
            data_dir = Path(tmp) / f"worker-{store}"
            starts = ("first", "restart") if store == "rocksdb" else ("first",)
            for start in starts:
                seconds, rss = start_and_measure(env, data_dir, timeout_s)
                runs.append(StoreRun(store, start, numbers, round(seconds, 2), round(rss, 1)))
                print(f"  {runs[-1]}", file=sys.stderr, flush=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ops/bench dedupe",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=1_000_000,
                        help="invoice numbers already in the table")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    runs = run(args.numbers, args.timeout)
    for r in runs:
        if args.json:
            print(json.dumps(asdict(r)))
        else:
            print(f"store={r.store:<8} start={r.start:<8} numbers={r.numbers} "
                  f"recovery_s={r.recovery_s} rss_mb={r.rss_mb}")
    print(f"{load_note()} at end; recovery_s: worker process start to Faust's "
          f"'{READY}'", file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
