"""Test helpers for the real broker: topic isolation by prefix, produce/consume, workers.

Every test gets its own topic prefix, so tests never see each other's records and the
broker can be shared by the whole session.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.runtime.keyring_file import init_keyring
from pipeline.runtime.private_files import write_private
from pipeline.runtime.topic_admin import reconcile
from topics import CatalogSettings, TopicSpec, topic_name

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class KafkaSandbox:
    """A prefixed copy of the topic catalog on the real broker."""

    bootstrap: str
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}.")
    partitions: int = 4

    @property
    def settings(self) -> CatalogSettings:
        return CatalogSettings(partitions=self.partitions, prefix=self.prefix)

    def create_topics(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        reports = reconcile(admin, self.settings, create=True)
        assert all(r.status in ("created", "ok") for r in reports), reports

    def name(self, spec: TopicSpec) -> str:
        return topic_name(spec, self.settings)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            KSEF_TOPIC_PREFIX=self.prefix,
            KSEF_TOPIC_PARTITIONS=str(self.partitions),
            KSEF_APP_ID=self.app_group,
            PYTHONPATH=str(REPO),
        )
        env.update(extra)
        return env

    @property
    def app_group(self) -> str:
        """The consumer group of the workers started in this sandbox (their app id)."""
        return f"app-{self.prefix.strip('.')}"

    def committed(self, spec: TopicSpec, partition: int) -> int | None:
        """The workers' committed offset of one partition (None: nothing committed)."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.app_group,
                      "enable.auto.commit": False})
        try:
            (tp,) = c.committed([TopicPartition(self.name(spec), partition)], timeout=30)
        finally:
            c.close()
        return tp.offset if tp.offset >= 0 else None

    def wait_committed(self, spec: TopicSpec, partition: int, past: int,
                       timeout_s: float = 60.0) -> int:
        """Wait until the workers have committed beyond offset `past` of the partition;
        the committed offset."""
        deadline = time.monotonic() + timeout_s
        while (committed := self.committed(spec, partition) or 0) <= past:
            assert time.monotonic() < deadline, \
                f"nothing committed past {past} of {self.name(spec)}[{partition}]"
            time.sleep(0.2)  # polling the group's commit: there is no event to await
        return committed

    def producer(self, **conf: Any) -> Producer:
        return Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True,
                         "acks": "all",
                         "message.max.bytes": 10 * 1024 * 1024, **conf})

    def produce(self, spec: TopicSpec, items: list[tuple[bytes, bytes]],
                headers: Mapping[str, str] | None = None) -> None:
        p = self.producer()
        for key, value in items:
            p.produce(self.name(spec), key=key, value=value,
                      headers=list((headers or {}).items()))
        assert p.flush(30) == 0

    def consume(self, spec: TopicSpec, expected: int, timeout_s: float = 60.0,
                group: str | None = None) -> list[Any]:
        """Read until `expected` records arrived or the timeout passed (then return what came)."""
        return self.consume_until(spec, lambda got: len(got) >= expected, timeout_s, group)

    def consume_until(self, spec: TopicSpec, done: Callable[[list[Any]], bool],
                      timeout_s: float = 60.0, group: str | None = None) -> list[Any]:
        """Read from the beginning until `done(records so far)` or the timeout."""
        c = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": group or f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 16 * 1024 * 1024,
        })
        # Assigned, not subscribed: reading starts at once, without a group rebalance.
        name = self.name(spec)
        partitions = c.list_topics(name, timeout=30).topics[name].partitions
        c.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in partitions])
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        try:
            while not done(out) and time.monotonic() < deadline:
                for msg in c.consume(1000, 0.1):
                    assert msg.error() is None, msg.error()
                    out.append(msg)
        finally:
            c.close()
        return out


    def deliver_again(self, msg: Any, times: int) -> None:
        """Copies of a consumed record right behind it in its own partition, as a
        redelivery after a crash or a rebalance presents it to a stage."""
        producer = self.producer()
        for _ in range(times):
            producer.produce(msg.topic(), key=msg.key(), value=msg.value(),
                             partition=msg.partition())
        assert producer.flush(30) == 0

    def read_to_end(self, spec: TopicSpec, timeout_s: float = 60.0) -> list[Any]:
        """Every record in the topic now (up to each partition's end at the call)."""
        probe = Consumer({"bootstrap.servers": self.bootstrap,
                          "group.id": f"reader-{uuid.uuid4().hex}"})
        name = self.name(spec)
        try:
            partitions = probe.list_topics(name, timeout=30).topics[name].partitions
            marks = [probe.get_watermark_offsets(TopicPartition(name, p), timeout=30)
                     for p in partitions]
        finally:
            probe.close()
        total = sum(high - low for low, high in marks)
        return self.consume_until(spec, lambda got: len(got) >= total, timeout_s)


class OpsFailed(AssertionError):
    """An ops/kafka script ended non-zero (its stderr is the message)."""


@dataclass
class KafkaCluster:
    """A cluster of its own, run by the ops/kafka scripts in `run_dir` (as an operator would)."""

    run_dir: Path
    bootstrap: str = ""

    def ops(self, script: str, *args: str, timeout_s: float = 300) -> str:
        """Run ops/kafka/<script>; its stdout, or OpsFailed with its stderr."""
        done = subprocess.run([str(REPO / "ops/kafka" / script), *args],
                              env={**os.environ, "KAFKA_RUN_DIR": str(self.run_dir)},
                              capture_output=True, text=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            raise OpsFailed(f"ops/kafka/{script} {' '.join(args)} exited {done.returncode}: "
                            f"{done.stderr.strip()}")
        return done.stdout

    def start(self, *args: str) -> str:
        """ops/kafka/start: the bootstrap list it prints."""
        self.bootstrap = self.ops("start", *args).strip().splitlines()[-1]
        return self.bootstrap

    def stop(self) -> None:
        self.ops("stop", timeout_s=120)

    def kill(self, node: int) -> None:
        """SIGKILL one node (returns once it is gone)."""
        self.ops("kill", str(node), timeout_s=120)

    def state(self) -> dict[str, str]:
        """cluster.env: CLUSTER_ID, KAFKA_NODES, BROKER_PORTS, CONTROLLER_PORTS, ..."""
        text = (self.run_dir / "cluster.env").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def broker_ports(self) -> list[int]:
        return [int(p) for p in self.state()["BROKER_PORTS"].strip('"').split()]


def cluster_run_dir(name: str) -> Path:
    """A new run dir for a test's own cluster: under ops/test's KSEF_TEST_KAFKA_ROOT (whose
    cleanup stops whatever runs there) or, run alone, in the temp dir."""
    root = os.environ.get("KSEF_TEST_KAFKA_ROOT")
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root or None))


@contextmanager
def own_cluster(name: str, *start_args: str) -> Iterator[KafkaCluster]:
    """A fresh cluster for one test, stopped (and its run dir removed) afterwards."""
    cluster = KafkaCluster(cluster_run_dir(name))
    try:
        cluster.start("--fresh", *start_args)
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            import shutil

            shutil.rmtree(cluster.run_dir, ignore_errors=True)


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, sig: int | None = None) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def data_dir(self) -> Path:
        return self.log_path.parent

    def wait_for_log(self, pattern: str, what: str, timeout_s: float = 120) -> None:
        """Wait until the worker's log matches `pattern` (regex); fail if it dies first."""
        deadline = time.monotonic() + timeout_s
        while re.search(pattern, self.log()) is None:
            assert self.proc.poll() is None, self.log()[-3000:]
            assert time.monotonic() < deadline, f"worker never logged {what}"
            time.sleep(0.5)  # polling a log file: there is no event to await


# logged by every worker once the app's group has given it some partitions
OWNS_A_SHARE = r'"held": \[\d[^]]*\], "given_up"'
# logged by a worker that gave some of its app group partitions up to one that joined
GAVE_UP_A_SHARE = r'"held": \[\d[^]]*\], "given_up": \[\d'
# logged by the deadline tracker once its group has given it some ksef.deadlines
# partitions
TRACKS_A_SHARE = r'"partitions": \[\d[^]]*\], "dropped"'


def sandbox_keyring(tmp: Path, data: bytes | None = None) -> Path:
    """`tmp`/keyring.json (0600) shared by the workers of one test: made with
    `keyring init` unless it exists (or written from `data`). Workers never make one."""
    path = tmp / "keyring.json"
    if data is not None:
        write_private(path, data, overwrite=True)
    elif not path.exists():
        init_keyring(path)
    return path


def start_worker(sandbox: KafkaSandbox, tmp: Path, *args: str, data_dir: Path | None = None,
                 **env: str) -> Worker:
    """A worker subprocess; `data_dir` of an earlier worker restarts it on its local state."""
    if data_dir is None:
        data_dir = tmp / f"worker-{uuid.uuid4().hex[:6]}"
        data_dir.mkdir(parents=True)
    if not ({"KSEF_KEYRING_FILE", "KSEF_KEYRING"} & set(env)):
        env = {**env, "KSEF_KEYRING_FILE": str(sandbox_keyring(tmp))}
    log_path = data_dir / "worker.log"
    cmd = [sys.executable, "-m", "pipeline.cli", "worker", "--web-port", str(free_port()),
           "--data-dir", str(data_dir), *args]
    with log_path.open("ab") as log:
        # KSEF_ENV has no default (a worker refuses to start without it): tests talk to the
        # emulator unless they say otherwise
        proc = subprocess.Popen(cmd, cwd=REPO, env=sandbox.env(**{"KSEF_ENV": "emulator", **env}),
                                stdout=log,
                                stderr=subprocess.STDOUT)
    return Worker(proc, log_path)


def iter_values(msgs: list[Any]) -> Iterator[bytes]:
    for m in msgs:
        yield m.value()
