"""The record loop's output step: a batch counts as delivered only when every record
was, a record refused for good runs its fallback before the commit, and anything else
stops the commit (the batch is read again)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from pipeline.runtime.record_loop import DeliveryFailed, LoopOutput, RefusedForGood
from topics import CatalogSettings
from topics.catalog import ALERTS, REJECTED, SEALED, RecordTooLarge


class Producer:
    """librdkafka's producer as the loop uses it; `errors` by topic, at delivery."""

    def __init__(self, errors: dict[str, KafkaError] | None = None, undelivered: int = 0
                 ) -> None:
        self.errors = errors or {}
        self.undelivered = undelivered
        self.sent: list[str] = []
        self._pending: list[tuple[str, Any]] = []

    def produce(self, topic: str, value: bytes | None, key: bytes, on_delivery: Any) -> None:
        self.sent.append(topic)
        self._pending.append((topic, on_delivery))

    def flush(self, timeout: float) -> int:
        pending, self._pending = self._pending, []
        for topic, callback in pending:
            callback(self.errors.get(topic), None)
        return self.undelivered

    def poll(self, timeout: float) -> int:
        return 0


def _out(producer: Producer) -> LoopOutput:
    return LoopOutput(producer, CatalogSettings(), timeout_s=1.0)


def test_delivered_records_settle() -> None:
    producer = Producer()
    out = _out(producer)
    out.produce(SEALED, b"k", b"v")
    out.settle()
    assert producer.sent == [SEALED.name]


def test_a_record_refused_for_good_runs_its_fallback_before_the_batch_settles() -> None:
    producer = Producer({SEALED.name: KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)})
    out = _out(producer)
    seen: list[BaseException] = []

    def instead(error: BaseException) -> None:
        seen.append(error)
        out.produce(REJECTED, b"k", b"rejection")

    out.produce(SEALED, b"k", b"v", instead)
    out.settle()
    assert producer.sent == [SEALED.name, REJECTED.name]
    assert len(seen) == 1 and isinstance(seen[0], RefusedForGood)


def test_a_refusal_without_a_fallback_stops_the_commit() -> None:
    producer = Producer({ALERTS.name: KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)})
    out = _out(producer)
    out.produce(ALERTS, b"k", b"v")
    with pytest.raises(DeliveryFailed, match="no fallback"):
        out.settle()


@pytest.mark.parametrize("producer", [
    Producer({SEALED.name: KafkaError(KafkaError._MSG_TIMED_OUT)}),
    Producer(undelivered=1),
], ids=["timed-out", "still-queued"])
def test_a_record_not_delivered_for_now_stops_the_commit(producer: Producer) -> None:
    out = _out(producer)
    out.produce(SEALED, b"k", b"v", lambda _error: None)
    with pytest.raises(DeliveryFailed):
        out.settle()


def test_a_record_larger_than_its_topic_takes_is_refused_before_sending() -> None:
    producer = Producer()
    out = _out(producer)
    with pytest.raises(RecordTooLarge):
        out.produce(ALERTS, b"k", b"x" * (ALERTS.max_message_bytes + 1))
    assert producer.sent == []
