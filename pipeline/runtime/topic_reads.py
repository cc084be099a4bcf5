"""Reads of topics outside any consumer group (group-less, so they never join or disturb
the Faust group): a whole topic to its current end (`read_all`), the latest value per
key of compacted topics (tombstones honoured), and records by coordinates with their
headers, read sequentially when they lie close together (`fetch_records`,
`SequentialReader`, for rebuilding a package).

Blocking (confluent-kafka), except `read_all`, which runs in a thread for async code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from pipeline.runtime.clients import kafka_consumer
from pipeline.runtime.settings import KafkaSettings
from topics import CatalogSettings, TopicSpec, topic_name
from topics.codec import decode
from topics.records import KafkaRef

T = TypeVar("T")

POLL_S = 1.0
MAX_IDLE_POLLS = 30
SEEK_GAP = 5_000  # farther apart than this, seek instead of reading through


def _consumer(kafka: KafkaSettings) -> Consumer:
    return kafka_consumer(kafka, **{
        "group.id": f"reader-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "enable.partition.eof": True, "fetch.max.bytes": 32 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024, "auto.offset.reset": "earliest",
        "log_level": 3,
        # through Python logging, so a lost broker is logged once (pipeline.runtime.broker_log)
        "logger": logging.getLogger("librdkafka")})


@dataclass(frozen=True)
class Snapshot:
    """Latest value per key (None = deleted) and the offset each partition was read to."""

    values: dict[bytes, bytes | None]
    ends: dict[int, int]

    def live(self) -> dict[bytes, bytes]:
        return {k: v for k, v in self.values.items() if v is not None}


def _messages(consumer: Consumer, what: str) -> Iterator[tuple[int, Message | None]]:
    """(partition, message) per record, (partition, None) at a partition's end; forever,
    so callers stop when they have what they need."""
    idle = 0
    while True:
        msg = consumer.poll(POLL_S)
        if msg is None:
            idle += 1
            if idle > MAX_IDLE_POLLS:
                raise TimeoutError(f"no answer reading {what}")
            continue
        idle = 0
        err = msg.error()
        if err is not None and err.code() == KafkaError._PARTITION_EOF:
            yield msg.partition() or 0, None
        elif err is not None:
            raise RuntimeError(f"reading {what}: {err}")
        else:
            yield msg.partition() or 0, msg


def read_latest(kafka: KafkaSettings, topic: str,
                partitions: Iterable[int] | None = None) -> Snapshot:
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
        for partition, msg in _messages(consumer, topic) if todo else ():
            offset = -1 if msg is None else msg.offset() or 0
            if msg is not None and offset < ends[partition]:
                values[msg.key() or b""] = msg.value()
            if msg is None or offset + 1 >= ends[partition]:
                todo.discard(partition)
                if not todo:
                    break
        return Snapshot(values, ends)
    finally:
        consumer.close()


def latest_records(kafka: KafkaSettings, topic: str, record: type[T]) -> list[T]:
    """The live records of a compacted topic, decoded (undecodable ones are skipped: only
    the stage that owns the topic writes it, and it reports its own junk)."""
    out = []
    for raw in read_latest(kafka, topic).live().values():
        try:
            out.append(decode(record, raw))
        except (ValueError, TypeError):
            continue
    return out


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
    for _, msg in _messages(consumer, f"{topic}[{partition}]"):
        if msg is None:
            return  # the rest is beyond the end: absent
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
        if index >= len(wanted):
            return
        if wanted[index] - offset > SEEK_GAP:
            consumer.assign([TopicPartition(topic, partition, wanted[index])])


def catalog_records(spec: TopicSpec, record: type[T]) -> list[T]:
    """`latest_records` of a catalog topic on the cluster the environment names
    (KAFKA_BOOTSTRAP_SERVERS, KSEF_TOPIC_PREFIX): what the operator commands read."""
    return latest_records(KafkaSettings.from_env(),
                          topic_name(spec, CatalogSettings.from_env()), record)


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

    def get(self, ref: KafkaRef) -> bytes:
        key = (ref.topic, ref.partition)
        if self._positions.get(key) != ref.offset:
            self._consumer.assign([TopicPartition(ref.topic, ref.partition, ref.offset)])
        for _, msg in _messages(self._consumer, str(ref)):
            if msg is None:
                raise LookupError(f"{ref} is gone (past retention?)")
            offset = msg.offset() or 0
            self._positions[key] = offset + 1
            if offset == ref.offset:
                return bytes(msg.value() or b"")
            if offset > ref.offset:
                raise LookupError(f"{ref} is gone (compacted or past retention)")
        raise AssertionError("unreachable: _messages never ends")

    def close(self) -> None:
        self._consumer.close()
