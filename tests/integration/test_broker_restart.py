"""`ops/kafka/start` after `ops/kafka/stop` brings the same cluster back: every topic,
every record, every committed offset, on the same ports (issue 12, point 4)."""

from __future__ import annotations

import socket

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.kafka_harness import KafkaSandbox, OpsFailed, own_cluster
from topics import CATALOG
from topics.catalog import SUBMITTED

GROUP = "restart-reader"


def _cluster_id(bootstrap: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return str(admin.describe_cluster(request_timeout=30).result(60).cluster_id)


def _committed(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                  "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=60)
    finally:
        c.close()
    return {tp.partition: tp.offset for tp in got}


def test_stop_then_start_keeps_topics_records_offsets_and_ports() -> None:
    with own_cluster("restart") as cluster:
        bootstrap = cluster.bootstrap
        cluster_id = _cluster_id(bootstrap)
        box = KafkaSandbox(bootstrap, partitions=3)
        box.create_topics()
        topic = box.name(SUBMITTED)
        sent = [(f"inv-{i:03d}".encode(), f"invoice {i}".encode()) for i in range(60)]
        box.produce(SUBMITTED, sent)

        # a group reads every record and commits all but the last of each partition
        reader = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False})
        reader.subscribe([topic])
        last: dict[int, int] = {}
        read = 0
        while read < len(sent):
            msgs = reader.consume(len(sent) - read, 60)
            assert msgs, f"the group read {read} of {len(sent)} records"
            for msg in msgs:
                assert msg.error() is None, msg.error()
                last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())
                read += 1
        assert sorted(last) == [0, 1, 2], last  # 60 keys reach every partition
        reader.commit(offsets=[TopicPartition(topic, p, o) for p, o in last.items()],
                      asynchronous=False)
        reader.close()
        before = _committed(bootstrap, topic, 3)
        assert before == last and sum(before.values()) == len(sent) - 3, before

        cluster.stop()

        # a port of the cluster taken meanwhile: a clear refusal, nothing wiped
        port = cluster.broker_ports()[0]
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            with pytest.raises(OpsFailed, match=rf"port\(s\) {port} .*taken.*--fresh"):
                cluster.start()
        # a different size is refused too, without touching the data
        with pytest.raises(OpsFailed, match="holds a 1-node cluster, not 3"):
            cluster.start("--brokers", "3")

        assert cluster.start() == bootstrap  # same ports
        assert _cluster_id(bootstrap) == cluster_id
        names = set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics)
        assert {box.name(spec) for spec in CATALOG} <= names
        back = box.consume(SUBMITTED, len(sent), timeout_s=120)
        assert sorted((m.key(), m.value()) for m in back) == sorted(sent)
        assert _committed(bootstrap, topic, 3) == before
        # and the group goes on where it stopped: the last record of each partition
        reader = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False})
        reader.subscribe([topic])
        rest: list[tuple[int, int]] = []
        try:
            while len(rest) < 3:
                msgs = reader.consume(3, 60)
                assert msgs, f"the group got {rest} of the 3 unread records"
                rest += [(m.partition(), m.offset()) for m in msgs if m.error() is None]
            assert not [m for m in reader.consume(10, 2) if m.error() is None]
        finally:
            reader.close()
        assert sorted(rest) == sorted(last.items())

        # --fresh starts over: a new cluster without the old topics
        cluster.start("--fresh")
        assert _cluster_id(cluster.bootstrap) != cluster_id
        fresh = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(timeout=30)
        assert not {box.name(spec) for spec in CATALOG} & set(fresh.topics)
