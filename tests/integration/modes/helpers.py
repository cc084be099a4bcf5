"""Watching topics of a sandbox as records arrive, for the mode-state tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.kafka_harness import KafkaSandbox
from topics import TopicSpec
from topics.codec import decode
from topics.records import SealedInvoice
from topics.sealed import read_meta

T = TypeVar("T")


@dataclass(frozen=True)
class Seen(Generic[T]):
    key: str
    value: T | None  # None = tombstone
    partition: int
    offset: int


class Watcher(Generic[T]):
    """Every record of one topic from its beginning, decoded, in arrival order."""

    def __init__(self, sandbox: KafkaSandbox, spec: TopicSpec, record: type[T]) -> None:
        self.record = record
        self.seen: list[Seen[T]] = []
        self._consumer = Consumer({
            "bootstrap.servers": sandbox.bootstrap, "group.id": f"w-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "log_level": 2})
        name = sandbox.name(spec)
        meta = self._consumer.list_topics(name, timeout=30).topics[name]
        self._consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING)
                               for p in meta.partitions])

    def _poll(self, seconds: float) -> None:
        for msg in self._consumer.consume(1000, seconds):
            assert msg.error() is None, msg.error()
            raw = msg.value()
            value = None if raw is None else (
                read_meta(raw) if self.record is SealedInvoice  # type: ignore[comparison-overlap]
                else decode(self.record, raw))
            self.seen.append(Seen((msg.key() or b"").decode(), value, msg.partition() or 0,
                                  msg.offset() or 0))

    def wait(self, done: Callable[[list[Seen[T]]], bool], timeout_s: float, what: str
             ) -> list[Seen[T]]:
        """Poll until `done(self.seen)`; fail with `what` after the timeout."""
        deadline = time.monotonic() + timeout_s
        while not done(self.seen):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; saw {len(self.seen)} "
                                     f"records, last: {self.seen[-3:]}")
            self._poll(0.5)
        return self.seen

    def first(self, match: Callable[[T], bool], timeout_s: float, what: str) -> T:
        self.wait(lambda seen: any(s.value is not None and match(s.value) for s in seen),
                  timeout_s, what)
        return next(s.value for s in self.seen if s.value is not None and match(s.value))

    def drain(self) -> None:
        """Read what is already there (a short poll)."""
        self._poll(1.0)

    def close(self) -> None:
        self._consumer.close()


def latest_values(seen: list[Seen[T]]) -> dict[str, T]:
    """The latest value per key of a compacted topic (a tombstone removes the key)."""
    out: dict[str, T] = {}
    for s in seen:
        if s.value is None:
            out.pop(s.key, None)
        else:
            out[s.key] = s.value
    return out
