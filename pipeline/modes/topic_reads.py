"""Group-less reads the mode-state stream needs beyond `pipeline.kafka_reads`:
the latest value per key of compacted topics (tombstones honoured), and records by
coordinates with their headers, read sequentially when they lie close together.

Blocking (confluent-kafka); call from a thread in async code.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from pipeline.settings import KafkaSettings
from topics.records import KafkaRef

POLL_S = 1.0
MAX_IDLE_POLLS = 30
SEEK_GAP = 5_000  # farther apart than this, seek instead of reading through


def _consumer(kafka: KafkaSettings) -> Consumer:
    return Consumer(kafka.confluent(**{
        "group.id": f"mode-reader-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "enable.partition.eof": True, "fetch.max.bytes": 32 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024, "auto.offset.reset": "earliest",
        "log_level": 2}))


@dataclass(frozen=True)
class Snapshot:
    """Latest value per key (None = deleted) and the offset each partition was read to."""

    values: dict[bytes, bytes | None]
    ends: dict[int, int]

    def live(self) -> dict[bytes, bytes]:
        return {k: v for k, v in self.values.items() if v is not None}


def read_latest(kafka: KafkaSettings, topic: str, partitions: Iterable[int] | None = None,
                progress: Callable[[int], None] | None = None) -> Snapshot:
    """Every key's latest value in `topic` (or some of its partitions) up to the current end."""
    consumer = _consumer(kafka)
    values: dict[bytes, bytes | None] = {}
    try:
        meta = consumer.list_topics(topic, timeout=15).topics.get(topic)
        if meta is None or meta.error is not None:
            raise LookupError(f"topic {topic} does not exist (ksef-pipeline topics create)")
        wanted = sorted(meta.partitions) if partitions is None else sorted(partitions)
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for p in wanted:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            ends[p] = high
            if high > low:
                starts.append(TopicPartition(topic, p, low))
        todo = {tp.partition for tp in starts}
        if todo:
            consumer.assign(starts)
        idle = 0
        while todo:
            msg = consumer.poll(POLL_S)
            if msg is None:
                idle += 1
                if idle > MAX_IDLE_POLLS:
                    raise TimeoutError(f"no data from {topic} partitions {sorted(todo)}")
                continue
            idle = 0
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    todo.discard(msg.partition())
                    continue
                raise RuntimeError(f"reading {topic}: {err}")
            partition, offset = msg.partition() or 0, msg.offset() or 0
            if offset < ends[partition]:
                values[msg.key() or b""] = msg.value()
                if progress is not None:
                    progress(1)
            if offset + 1 >= ends[partition]:
                todo.discard(partition)
        return Snapshot(values, ends)
    finally:
        consumer.close()


@dataclass(frozen=True)
class RawRecord:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def fetch_records(kafka: KafkaSettings, refs: Iterable[KafkaRef],
                  progress: Callable[[int], None] | None = None) -> dict[KafkaRef, RawRecord]:
    """The records at `refs` (missing ones, e.g. past retention, are absent)."""
    by_tp: dict[tuple[str, int], list[int]] = defaultdict(list)
    for ref in refs:
        by_tp[(ref.topic, ref.partition)].append(ref.offset)
    consumer = _consumer(kafka)
    out: dict[KafkaRef, RawRecord] = {}
    try:
        for (topic, partition), offsets in sorted(by_tp.items()):
            wanted = sorted(set(offsets))
            _scan(consumer, topic, partition, wanted, out, progress)
        return out
    finally:
        consumer.close()


def _headers(raw: object) -> dict[str, bytes]:
    pairs = raw.items() if isinstance(raw, dict) else raw or []
    out = {}
    for key, value in pairs:  # type: ignore[attr-defined]
        if value is not None:
            out[str(key)] = value if isinstance(value, bytes) else str(value).encode()
    return out


def _scan(consumer: Consumer, topic: str, partition: int, wanted: list[int],
          out: dict[KafkaRef, RawRecord], progress: Callable[[int], None] | None) -> None:
    index = 0
    consumer.assign([TopicPartition(topic, partition, wanted[0])])
    idle = 0
    while index < len(wanted):
        msg = consumer.poll(POLL_S)
        if msg is None:
            idle += 1
            if idle > MAX_IDLE_POLLS:
                raise TimeoutError(f"no answer reading {topic}[{partition}]")
            continue
        idle = 0
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return  # the rest is beyond the end: absent
            raise RuntimeError(f"reading {topic}[{partition}]: {err}")
        offset = msg.offset() or 0
        while index < len(wanted) and wanted[index] < offset:
            index += 1  # compacted away or past retention: absent
            if progress is not None:
                progress(1)
        if index < len(wanted) and wanted[index] == offset:
            out[KafkaRef(topic, partition, offset)] = RawRecord(msg.key(), msg.value(),
                                                                _headers(msg.headers()))
            index += 1
            if progress is not None:
                progress(1)
        if index < len(wanted) and wanted[index] - offset > SEEK_GAP:
            consumer.assign([TopicPartition(topic, partition, wanted[index])])
