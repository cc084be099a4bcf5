"""A group-less follower of every partition of one topic, with a catch-up barrier.

Stages that decide from what other workers wrote (the session journal, what was packed,
which invoices already have a final record) must not decide from a copy read once at
start-up: a worker that takes over a killed worker's partitions would then miss the
steps its predecessor journaled since, and send a batch again. The follower keeps
reading the topic for the life of the worker and applies each record in the event loop;
`caught_up()` returns once every record that was in the topic when it was called has
been applied, so a stage awaits it before acting on a partition it has just been given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from pipeline.runtime import logs
from pipeline.runtime.clients import stream_consumer
from pipeline.runtime.settings import KafkaSettings

log = logs.get(__name__)

Apply = Callable[[ConsumerRecord], None]  # type: ignore[type-arg]
StartOffsets = Callable[[], Mapping[int, int]]
RETRY_S = 2.0
REMIND_EVERY = 30  # failed attempts between two log lines (a minute)
HEALTHY_S = 10.0  # an attempt that lasted this long had been following
# Bounded read-ahead, like the app's own consumer: a settled 10,000-invoice batch puts
# 10,000 outcomes on the topic at once, and reading them in one fetch held them all as
# records (~1 KB each) besides the fetch itself. Kafka still returns a record larger
# than the fetch size (a manifest), one at a time.
FETCH_BYTES = 256 * 1024  # per partition
MAX_RECORDS = 500  # per getmany


async def follow_forever(follow: Callable[[], Awaitable[None]], topic: str) -> None:
    """Run `follow` again after every error, until cancelled (one bad moment of the
    broker must not end a worker's view of a topic). A failure is logged when it starts
    and then once a minute while it lasts, not at every retry."""
    failures = 0
    while True:
        began = time.monotonic()
        try:
            await follow()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if time.monotonic() - began > HEALTHY_S:
                failures = 0  # it had been following: a new failure, worth a line
            if failures % REMIND_EVERY == 0:
                log.error("following a topic failed; retrying", topic=topic, error=str(exc),
                          failures=failures + 1, retry_in_s=RETRY_S)
            failures += 1
            await asyncio.sleep(RETRY_S)


class TopicFollower:
    def __init__(self, kafka: KafkaSettings, topic: str, partitions: int, apply: Apply,
                 start: StartOffsets | None = None) -> None:
        self.kafka = kafka
        self.topic = topic
        self.partitions = partitions  # from the topic catalog
        self._apply = apply
        self._start = start  # partition -> first offset to read (default: the beginning)
        self._positions: dict[int, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._progress: asyncio.Condition | None = None

    @property
    def progress(self) -> asyncio.Condition:
        if self._progress is None:
            self._progress = asyncio.Condition()
        return self._progress

    async def run(self) -> None:
        """Follow the topic until cancelled; reconnects after errors."""
        await follow_forever(self._follow, self.topic)

    async def caught_up(self) -> None:
        """Wait until every record in the topic now has been applied."""
        async with self.progress:
            await self.progress.wait_for(lambda: self._consumer is not None)
        consumer = self._consumer
        assert consumer is not None
        tps = [TopicPartition(self.topic, p) for p in self._positions]
        ends = {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
        async with self.progress:
            await self.progress.wait_for(lambda: all(
                self._positions.get(p, 0) >= end for p, end in ends.items()))

    async def _follow(self) -> None:
        consumer = stream_consumer(self.kafka, group_id=None, enable_auto_commit=False,
                                   auto_offset_reset="earliest",
                                   max_partition_fetch_bytes=FETCH_BYTES)
        await consumer.start()
        try:
            if self.topic not in await consumer.topics():
                raise LookupError(f"topic {self.topic} does not exist")
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            start = dict(self._start()) if self._start else {}
            for tp in tps:
                if tp.partition in start:
                    consumer.seek(tp, start[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            async with self.progress:
                for tp in tps:
                    self._positions[tp.partition] = await consumer.position(tp)
                self._consumer = consumer
                self.progress.notify_all()
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=1000, max_records=MAX_RECORDS)
                for records in batch.values():
                    for record in records:
                        try:
                            self._apply(record)
                        except Exception:  # one bad record must not stop the follower
                            log.exception("a followed record could not be applied",
                                          topic=self.topic, partition=record.partition,
                                          offset=record.offset)
                async with self.progress:
                    for tp in tps:
                        self._positions[tp.partition] = await consumer.position(tp)
                    self.progress.notify_all()
        finally:
            self._consumer = None
            await consumer.stop()
