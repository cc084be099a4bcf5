"""Direct reads from Kafka for the stages that rebuild state from a topic at start-up
(the session journal) or fetch single records by coordinates (rebuilding a package).

confluent-kafka in a worker thread: a plain, group-less reader that never joins (or
disturbs) the Faust consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from pipeline.runtime.clients import kafka_consumer
from pipeline.runtime.settings import KafkaSettings
from topics.codec import decode
from topics.records import KafkaRef

T = TypeVar("T")
POLL_S = 1.0


def _consumer(kafka: KafkaSettings) -> Consumer:
    return kafka_consumer(kafka, **{
        "group.id": f"reader-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "enable.partition.eof": True, "fetch.max.bytes": 32 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024, "log_level": 3,
        # through Python logging, so a lost broker is logged once (pipeline.runtime.broker_log)
        "logger": logging.getLogger("librdkafka")})


def _read_all(kafka: KafkaSettings, topic: str, record: type[T],
              since_ms: int | None = None) -> list[T]:
    consumer = _consumer(kafka)
    try:
        meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
        if meta is None or not meta.partitions:
            return []
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
        if since_ms is not None:
            stamps = [TopicPartition(topic, p, since_ms) for p in sorted(meta.partitions)]
            parts = [tp if tp.offset >= 0 else TopicPartition(topic, tp.partition, 1 << 62)
                     for tp in consumer.offsets_for_times(stamps, timeout=30)]
        ends = {}
        for tp in parts:
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
            if high > max(low, tp.offset if tp.offset >= 0 else low):
                ends[tp.partition] = high
        if not ends:
            return []
        consumer.assign([tp for tp in parts if tp.partition in ends])
        out: list[T] = []
        while ends:
            msg = consumer.poll(POLL_S)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    ends.pop(msg.partition(), None)
                    continue
                raise RuntimeError(f"reading {topic}: {msg.error()}")
            value = msg.value()
            if value is not None:
                with contextlib.suppress(ValueError, TypeError):
                    out.append(decode(record, value))
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        return out
    finally:
        consumer.close()


async def read_all(kafka: KafkaSettings, topic: str, record: type[T],
                   since_ms: int | None = None) -> list[T]:
    """Every record of `topic` from the beginning (or from `since_ms`, a timestamp) to its
    current end; undecodable records are skipped (only foreign garbage can be undecodable
    on our own topics)."""
    return await asyncio.to_thread(_read_all, kafka, topic, record, since_ms)


class SequentialReader:
    """Fetch records by coordinates, cheaply when asked in increasing offset order per
    partition (a package's invoices are); blocking, for use in a worker thread."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._consumer = _consumer(kafka)
        self._positions: dict[tuple[str, int], int] = {}
        self._ahead: dict[KafkaRef, bytes] = {}

    def get(self, ref: KafkaRef) -> bytes:
        if ref in self._ahead:
            return self._ahead.pop(ref)
        key = (ref.topic, ref.partition)
        if self._positions.get(key) != ref.offset:
            self._consumer.assign([TopicPartition(ref.topic, ref.partition, ref.offset)])
        attempts = 0
        while True:
            msg = self._consumer.poll(POLL_S)
            if msg is None:
                attempts += 1
                if attempts > 30:
                    raise TimeoutError(f"no answer reading {ref}")
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    raise LookupError(f"{ref} is gone (past retention?)")
                raise RuntimeError(f"reading {ref}: {msg.error()}")
            self._positions[key] = msg.offset() + 1
            if msg.offset() == ref.offset:
                return bytes(msg.value() or b"")
            if msg.offset() > ref.offset:
                raise LookupError(f"{ref} is gone (compacted or past retention)")

    def close(self) -> None:
        self._consumer.close()
