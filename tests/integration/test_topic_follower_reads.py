"""The follower reads with a bounded fetch: a burst of small records arrives in getmany
batches of at most MAX_RECORDS, and a record larger than the fetch size (a manifest of a
full batch) still arrives whole."""

from __future__ import annotations

import asyncio

from pipeline.runtime.settings import KafkaSettings
from pipeline.runtime.topic_follower import FETCH_BYTES, MAX_RECORDS, TopicFollower
from tests.kafka_harness import KafkaSandbox
from topics.catalog import PACKED


async def test_a_burst_and_a_record_larger_than_the_fetch_are_all_applied(
        sandbox: KafkaSandbox) -> None:
    sandbox.create_topics()
    big = bytes(range(256)) * (4 * FETCH_BYTES // 256)  # 4x the per-partition fetch
    small = [(b"k", b"s%d" % n) for n in range(3 * MAX_RECORDS)]
    sandbox.produce(PACKED, [*small[:10], (b"k", big), *small[10:]])  # one key: one partition
    seen: list[bytes] = []
    follower = TopicFollower(KafkaSettings(bootstrap_servers=sandbox.bootstrap),
                             sandbox.name(PACKED), sandbox.partitions,
                             lambda record: seen.append(record.value))
    task = asyncio.ensure_future(follower.run())
    try:
        await asyncio.wait_for(follower.caught_up(), 60)
    finally:
        task.cancel()
    assert seen == [v for _, v in small[:10]] + [big] + [v for _, v in small[10:]]
