"""The validate stage's output step: a record a topic can never take becomes a bounded
rejection, or an alert when not even that can be written; it never raises (no crash
loop on one record)."""

from __future__ import annotations

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
    import pipeline.stages.s1_validate_seal.validate as module

    return module


def _stage(validate: ModuleType) -> Any:
    from pipeline.runtime.keyring_file import KeyringSource
    from pipeline.runtime.settings import ValidateSealSettings

    ring = orjson.dumps(
        {"active": "k1", "keys": {"k1": base64.b64encode(b"\x61" * 32).decode()}}).decode()
    return validate.ValidateSeal(ValidateSealSettings(ksef_env="emulator"),
                                 KeyringSource(text=ring))


class Out:
    """The loop's output as the stage sees it; `refused` topics take nothing."""

    def __init__(self, refused: set[str] | frozenset[str] = frozenset()) -> None:
        self.refused = refused
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.fallbacks: dict[str, Any] = {}

    def produce(self, spec: TopicSpec, key: bytes, value: bytes | None,
                refused: Any = None) -> None:
        if spec.name in self.refused:
            raise RecordTooLarge(spec, spec.max_message_bytes + 1)
        self.sent.append((spec.name, key, value))
        self.fallbacks[spec.name] = refused


def _sub() -> Submission:
    yesterday = dt.date.today() - dt.timedelta(days=1)
    xml = make_invoice(seller_nip=SELLER, number="FV/E/1", issue_date=yesterday, seed=6)
    return Submission(b"inv-emit", xml, {}, ORIGIN, "2026-11-20T10:00:00+00:00")


def _run(validate: ModuleType, monkeypatch: pytest.MonkeyPatch,
         refused: set[str]) -> list[tuple[str, bytes, bytes | None]]:
    out = Out(refused)
    sub = _sub()
    validate.emit(out, sub, _stage(validate).validate_and_seal(sub))
    return out.sent


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
    def check(spec: TopicSpec, key: bytes | None, value: bytes | None,
              headers_bytes: int = 0) -> None:
        if spec is DEADLINES:
            raise RecordTooLarge(spec, spec.max_message_bytes + 1)

    monkeypatch.setattr(validate, "check_record_size", check)
    out = Out()
    sub = _sub()
    validate.emit(out, sub, _stage(validate).validate_and_seal(sub))
    sent = [name for name, _, _ in out.sent]
    assert sent == [REJECTED.name]


def test_a_sealed_record_the_broker_refuses_later_becomes_a_rejection_before_the_commit(
        validate: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker's own refusal (a topic configured below the catalog) arrives at
    delivery; the loop then runs the fallback each record was produced with."""
    from pipeline.runtime.record_loop import RefusedForGood

    out = Out()
    sub = _sub()
    validate.emit(out, sub, _stage(validate).validate_and_seal(sub))
    sent = lambda: [name for name, _, _ in out.sent]  # noqa: E731
    assert sent() == [SEALED.name, DEADLINES.name]
    out.fallbacks[SEALED.name](RefusedForGood("MSG_SIZE_TOO_LARGE"))
    assert sent()[-1] == REJECTED.name
    out.fallbacks[REJECTED.name](RefusedForGood("MSG_SIZE_TOO_LARGE"))  # not even that
    assert sent()[-1] == ALERTS.name
    out.fallbacks[ALERTS.name](RefusedForGood("MSG_SIZE_TOO_LARGE"))  # logged; no raise
    assert sent()[-1] == ALERTS.name
