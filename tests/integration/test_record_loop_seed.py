"""A record loop's new consumer group starts from the app group's commits on every topic
it reads (the upgrade from Faust agents), and only when it has no commit of its own."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.runtime.record_loop import seed_offsets
from tests.kafka_harness import KafkaSandbox
from topics.catalog import DEADLINES, OUTCOMES, REJECTED


def _commit(sandbox: KafkaSandbox, group: str, offsets: list[TopicPartition]) -> None:
    committer = Consumer({"bootstrap.servers": sandbox.bootstrap, "group.id": group,
                          "enable.auto.commit": False})
    try:
        committer.commit(offsets=offsets, asynchronous=False)
    finally:
        committer.close()


def _committed(admin: AdminClient, group: str) -> dict[tuple[str, int], int]:
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    result = next(iter(future.values())).result(30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or []
            if tp.offset >= 0}


def test_a_new_group_takes_the_old_groups_commits_on_its_topics_only_once(
        sandbox: KafkaSandbox) -> None:
    old, new = f"old-{uuid.uuid4().hex[:8]}", f"new-{uuid.uuid4().hex[:8]}"
    deadlines, outcomes, rejected = (sandbox.name(s) for s in (DEADLINES, OUTCOMES, REJECTED))
    _commit(sandbox, old, [TopicPartition(deadlines, 0, 7), TopicPartition(deadlines, 1, 3),
                           TopicPartition(outcomes, 2, 5), TopicPartition(rejected, 0, 9)])
    admin = AdminClient({"bootstrap.servers": sandbox.bootstrap})
    assert seed_offsets(admin, new, old, [deadlines, outcomes]) == 3
    assert _committed(admin, new) == {(deadlines, 0): 7, (deadlines, 1): 3, (outcomes, 2): 5}
    # the new group has commits now: its own stand, nothing is copied again
    _commit(sandbox, old, [TopicPartition(deadlines, 0, 20)])
    assert seed_offsets(admin, new, old, [deadlines, outcomes]) == 0
    assert _committed(admin, new)[(deadlines, 0)] == 7
