"""The validate agent's output step: a record a topic can never take becomes a bounded
rejection, or an alert when not even that can be written; it never raises (no crash
loop on one record)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from types import ModuleType
from typing import Any

import orjson
import pytest

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.stages.s1_validate_seal.submission import Submission
from topics.catalog import ALERTS, DEADLINES, REJECTED, SEALED, RecordTooLarge, TopicSpec
from topics.codec import decode
from topics.records import Alert, KafkaRef, Rejection

(SELLER,) = seller_nips(1, seed=61)
ORIGIN = KafkaRef("ksef.invoices.submitted", 2, 99)


@pytest.fixture
def validate(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("KSEF_KEYRING", orjson.dumps(
        {"active": "k1", "keys": {"k1": base64.b64encode(b"\x61" * 32).decode()}}).decode())
    import pipeline.stages.s1_validate_seal.validate as module

    return module


def _sub() -> Submission:
    yesterday = dt.date.today() - dt.timedelta(days=1)
    xml = make_invoice(seller_nip=SELLER, number="FV/E/1", issue_date=yesterday, seed=6)
    return Submission(b"inv-emit", xml, {}, ORIGIN, "2026-11-20T10:00:00+00:00")


def _run(validate: ModuleType, monkeypatch: pytest.MonkeyPatch,
         refused: set[str]) -> list[tuple[str, bytes, bytes | None]]:
    sent: list[tuple[str, bytes, bytes | None]] = []

    async def produce(spec: TopicSpec, key: bytes, value: bytes | None,
                      _refused: Any = None) -> None:
        if spec.name in refused:
            raise RecordTooLarge(spec, spec.max_message_bytes + 1)
        sent.append((spec.name, key, value))

    monkeypatch.setattr(validate, "produce", produce)
    sub = _sub()
    asyncio.run(validate.emit(sub, validate.validate_and_seal(sub)))
    return sent


def test_a_valid_invoice_is_sealed_with_its_deadline_record(
        validate: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _run(validate, monkeypatch, set())
    assert [name for name, _, _ in sent] == [SEALED.name, DEADLINES.name]


def test_a_sealed_record_no_topic_takes_becomes_a_bounded_rejection(
        validate: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _run(validate, monkeypatch, {SEALED.name})
    assert [(name, key) for name, key, _ in sent] == [(REJECTED.name, b"inv-emit")]
    value = sent[0][2]
    assert value is not None and len(value) < 64 * 1024
    rejection = decode(Rejection, value)
    assert (rejection.reason, rejection.code) == ("too-large", 430)
    assert rejection.origin == ORIGIN and SEALED.name in rejection.message


def test_when_not_even_the_rejection_fits_the_record_is_parked_with_an_alert(
        validate: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _run(validate, monkeypatch, {SEALED.name, REJECTED.name})
    assert [name for name, _, _ in sent] == [ALERTS.name]
    alert = decode(Alert, sent[0][2] or b"")
    assert alert.kind == "record-parked" and alert.severity == "critical"
    assert alert.details == {"topic": ORIGIN.topic, "partition": 2, "offset": 99,
                             "error": "RecordTooLarge"}


def test_nothing_written_at_all_still_does_not_raise(
        validate: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(validate, monkeypatch, {SEALED.name, REJECTED.name, ALERTS.name}) == []


def test_a_deadline_record_too_large_means_no_sealed_record_either(
        validate: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []

    def check(spec: TopicSpec, key: bytes | None, value: bytes | None,
              headers_bytes: int = 0) -> None:
        if spec is DEADLINES:
            raise RecordTooLarge(spec, spec.max_message_bytes + 1)

    monkeypatch.setattr(validate, "check_record_size", check)

    async def produce(spec: TopicSpec, key: bytes, value: bytes | None,
                      _refused: Any = None) -> None:
        sent.append(spec.name)

    monkeypatch.setattr(validate, "produce", produce)
    sub = _sub()
    asyncio.run(validate.emit(sub, validate.validate_and_seal(sub)))
    assert sent == [REJECTED.name]


def test_a_sealed_record_the_broker_refuses_later_becomes_a_rejection_before_the_commit(
        validate: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker's own refusal (a topic configured below the catalog) arrives at flush
    time; the guard then runs the fallback each record was produced with."""
    from aiokafka.errors import MessageSizeTooLargeError  # type: ignore[import-untyped]

    sent: list[str] = []
    fallbacks: dict[str, Any] = {}

    async def produce(spec: TopicSpec, key: bytes, value: bytes | None,
                      refused: Any = None) -> None:
        sent.append(spec.name)
        fallbacks[spec.name] = refused

    monkeypatch.setattr(validate, "produce", produce)
    sub = _sub()

    async def scenario() -> None:
        await validate.emit(sub, validate.validate_and_seal(sub))
        assert sent == [SEALED.name, DEADLINES.name]
        await fallbacks[SEALED.name](MessageSizeTooLargeError())
        assert sent[-1] == REJECTED.name
        await fallbacks[REJECTED.name](MessageSizeTooLargeError())  # not even that
        assert sent[-1] == ALERTS.name

    asyncio.run(scenario())
