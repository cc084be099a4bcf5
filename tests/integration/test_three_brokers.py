"""A 3-broker KRaft cluster: one broker killed with SIGKILL under load and brought back;
nothing lost, nothing doubled (issue 12, point 6).

The cluster is the test's own (`ops/kafka/start --brokers 3`), beside the suite's single
broker. The catalog's topics get 3 replicas and min.insync.replicas 2 by following the
cluster's size; an idempotent acks=all producer writes N keyed records while the leader
of a partition is killed, while it is down, while it comes back and while leadership
moves back to it; then every partition holds exactly N records, each key once. A worker
on that cluster creates its tables' changelogs with 3 replicas too.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ElectionType,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource

from pipeline.runtime.topic_admin import reconcile
from tests.kafka_harness import KafkaCluster, KafkaSandbox, own_cluster, start_worker
from topics.catalog import SUBMITTED

N = 20_000
PARTITIONS = 6
WINDOW = 500  # records in flight at most: the load goes on through every phase
KILL_AT, RESTART_AT, ELECT_AT = 5_000, 11_000, 16_000
EVENT_TIMEOUT_S = 180.0  # generous: a loaded 2-core machine


def _wait(what: str, done: Callable[[], bool], timeout_s: float = EVENT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.2)  # polling cluster metadata: there is no event to await


def _partitions(admin: AdminClient, topic: str) -> dict[int, Any]:
    return dict(admin.list_topics(topic, timeout=30).topics[topic].partitions)


@pytest.fixture(scope="module")
def three_brokers() -> Iterator[KafkaCluster]:
    with own_cluster("three", "--brokers", "3") as cluster:
        yield cluster


def test_sigkill_of_one_of_three_brokers_loses_and_doubles_nothing(
        three_brokers: KafkaCluster) -> None:
    cluster = three_brokers
    started = time.monotonic()
    assert len(cluster.bootstrap.split(",")) == 3
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    box = KafkaSandbox(cluster.bootstrap, partitions=PARTITIONS)
    box.create_topics()  # the pipeline's catalog, replication `auto`
    # Creation is acknowledged before every broker has the metadata, and this admin may
    # ask another broker than the one that created them: wait until it sees them all.
    _wait("the catalog visible to this client",
          lambda: all(r.status != "missing"
                      for r in reconcile(admin, box.settings, create=False)))
    for report in reconcile(admin, box.settings, create=False):
        assert report.replication == 3, report
        assert report.configs["min.insync.replicas"] == "2", report
    topic = box.name(SUBMITTED)
    parts = _partitions(admin, topic)
    assert all(len(p.replicas) == 3 and len(p.isrs) == 3 for p in parts.values())
    victim = parts[0].leader
    led = sorted(p.id for p in parts.values() if p.leader == victim)
    ready = time.monotonic()
    _run_load(cluster, admin, topic, victim, led)
    loaded = time.monotonic()
    _assert_each_key_once(cluster.bootstrap, topic)
    print(f"3 brokers: topics {ready - started:.1f} s, {N} records with broker {victim} "
          f"killed and back {loaded - ready:.1f} s, read back {time.monotonic() - loaded:.1f} s")


def test_a_worker_creates_its_table_changelogs_with_three_replicas(
        three_brokers: KafkaCluster, tmp_path: Path) -> None:
    cluster = three_brokers
    cluster.start()  # every node up, whatever the test before left
    box = KafkaSandbox(cluster.bootstrap, partitions=2)
    box.create_topics()
    worker = start_worker(box, tmp_path, "--stages", "pack")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    changelog = f"{box.app_group}-pack-ksef-dedupe-changelog"
    try:
        def created() -> bool:
            assert worker.proc.poll() is None, worker.log()[-3000:]
            return changelog in admin.list_topics(timeout=30).topics

        _wait("the dedupe table's changelog", created)
    finally:
        # This cluster has no KSeF: a pack stage still retrying the MF key when SIGTERM
        # comes may take its stop deadline (124, bounded and logged) instead of a clean
        # exit; what this test checks is the changelog, below. (A clean stop while KSeF
        # is unreachable is a known gap, see the README's Known gaps.)
        assert worker.stop() in (0, 124), worker.log()[-3000:]
    parts = _partitions(admin, changelog)
    assert all(len(p.replicas) == 3 for p in parts.values()), parts
    res = ConfigResource(ConfigResource.Type.TOPIC, changelog)
    configs = admin.describe_configs([res])[res].result()
    assert configs["min.insync.replicas"].value == "2"


def _run_load(cluster: KafkaCluster, admin: AdminClient, topic: str, victim: int,
              led: list[int]) -> None:
    producer = Producer({
        "bootstrap.servers": cluster.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 240_000,  # longer than any failover here: nothing expires
    })
    delivered: list[tuple[int, int]] = []
    failed: list[str] = []

    def report(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            failed.append(f"{msg.key()!r}: {err}")
        else:
            delivered.append((msg.partition(), msg.offset()))

    restart_errors: list[BaseException] = []

    def restart() -> None:
        try:
            cluster.start()  # starts the missing node on its data and ports
            _wait("the restarted broker back in every ISR", lambda: all(
                len(p.isrs) == 3 for p in _partitions(admin, topic).values()))
        except BaseException as exc:  # reported by the main thread
            restart_errors.append(exc)

    restarter = threading.Thread(target=restart, name="restart-broker")
    down_since = 0.0
    t0 = time.monotonic()
    for i in range(N):
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while len(producer) >= WINDOW:
            producer.poll(0.1)  # delivery reports free the window
            assert time.monotonic() < deadline, f"no delivery for {EVENT_TIMEOUT_S} s"
        producer.produce(topic, key=f"inv-{i:06d}".encode(), value=f"invoice {i}".encode(),
                         on_delivery=report)
        producer.poll(0)
        if i == KILL_AT:
            cluster.kill(victim)  # records of its partitions are in flight
            down_since = time.monotonic()
            assert len(producer) > 0
        elif i == RESTART_AT:
            # the leaders moved off the dead broker before it comes back
            _wait("new leaders for the dead broker's partitions", lambda: all(
                _partitions(admin, topic)[p].leader not in (victim, -1) for p in led))
            restarter.start()
        elif i == ELECT_AT:
            restarter.join(EVENT_TIMEOUT_S)
            assert not restarter.is_alive() and not restart_errors, restart_errors
            # leadership moves back to the restarted broker while records flow
            futures = admin.elect_leaders(ElectionType.PREFERRED,
                                          [TopicPartition(topic, p) for p in led])
            for tp, err in futures.result().items():
                assert err is None or "ELECTION_NOT_NEEDED" in str(err), (tp, err)
    assert producer.flush(EVENT_TIMEOUT_S) == 0, "records still undelivered"
    assert down_since > 0
    print(f"killed at {down_since - t0:.1f} s, all delivered at {time.monotonic() - t0:.1f} s")
    assert not failed, failed[:5]
    assert len(delivered) == N
    assert len(set(delivered)) == N  # every record got an offset of its own
    back = _partitions(admin, topic)
    assert all(back[p].leader == victim for p in led), "leadership did not move back"


def _assert_each_key_once(bootstrap: str, topic: str) -> None:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "three-brokers-check",
                       "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        ends = {}
        for p in range(PARTITIONS):
            low, high = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            assert low == 0
            ends[p] = high
        # no transactions here: every offset is a record, so the end offsets count them all
        assert sum(ends.values()) == N, ends
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        keys: Counter[bytes] = Counter()
        position = {p: 0 for p in range(PARTITIONS)}
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while any(position[p] < ends[p] for p in position):
            assert time.monotonic() < deadline, f"read {sum(keys.values())} of {N}"
            for msg in reader.consume(5000, 1.0):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                keys[msg.key()] += 1
                assert int(msg.value().split()[1]) == int(msg.key()[4:]), msg.value()
                position[msg.partition()] = msg.offset() + 1
    finally:
        reader.close()
    assert len(keys) == N, f"{N - len(keys)} keys lost"
    doubled = {k: n for k, n in keys.items() if n != 1}
    assert not doubled, f"{len(doubled)} keys stored more than once: {list(doubled)[:5]}"
