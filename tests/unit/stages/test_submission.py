"""The validate stage's decisions without Kafka: contract rules, reasons, dedupe."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from pipeline.demo.samples import bad_invoices, make_invoice, seller_nips
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.ksef.numbers import sha256_b64
from pipeline.stages.submission import (
    ALL_REASONS,
    AttachmentPolicy,
    Submission,
    check_submission,
    dedupe,
    duplicate_key,
    held_keys,
    held_value,
    release_for,
    routing_key,
)
from topics.records import KafkaRef, Rejection, ValidatedInvoice

TODAY = dt.date(2026, 11, 20)
CHECKER = InvoiceChecker()
SELLER, OTHER = seller_nips(2, seed=7)


def sub(value: bytes | None, key: bytes | None = b"inv-1", **headers: str) -> Submission:
    return Submission(key, value, {k: v.encode() for k, v in headers.items()},
                      KafkaRef("ksef.invoices.submitted", 3, 42), "2026-11-20T10:00:00+00:00")


def invoice(number: str = "FV/1", seed: int = 0, **kw: object) -> bytes:
    return make_invoice(seller_nip=SELLER, number=number, issue_date=TODAY, seed=seed, **kw)


def test_valid_invoice_keeps_exact_bytes_and_metadata() -> None:
    xml = invoice()
    out = check_submission(sub(xml, **{"ksef-source": "erp"}), CHECKER, TODAY,
                           AttachmentPolicy())
    assert isinstance(out, ValidatedInvoice)
    assert base64.b64decode(out.xml_b64) == xml
    assert (out.seller_nip, out.invoice_number, out.issue_date) == (SELLER, "FV/1",
                                                                    TODAY.isoformat())
    assert out.sha256 == sha256_b64(xml) and out.size == len(xml) and out.source == "erp"
    assert out.origin == KafkaRef("ksef.invoices.submitted", 3, 42)


@pytest.mark.parametrize(("reason", "data"), bad_invoices(TODAY))
def test_every_bad_input_becomes_a_reasoned_rejection(reason: str, data: bytes) -> None:
    out = check_submission(sub(data), CHECKER, TODAY, AttachmentPolicy())
    assert isinstance(out, Rejection)
    expected = "not-xml" if reason == "empty" else reason
    assert out.reason == expected, out.message
    assert out.code == ALL_REASONS[out.reason][0]
    assert out.message and out.invoice_id == "inv-1" and out.stage == "validate"


@pytest.mark.parametrize("junk", [b"", b"\x00\xff" * 1000, b"\x89PNG\r\n" + bytes(5_000_000)])
def test_poison_values_are_rejected_not_raised(junk: bytes) -> None:
    out = check_submission(sub(junk), CHECKER, TODAY, AttachmentPolicy())
    assert isinstance(out, Rejection) and out.code == 430


def test_missing_or_binary_key_is_rejected_with_its_kafka_origin() -> None:
    for key in (None, b"\xff\xfe"):
        out = check_submission(sub(invoice(), key=key), CHECKER, TODAY, AttachmentPolicy())
        assert isinstance(out, Rejection) and out.reason == "missing-invoice-id"
        assert out.invoice_id == "no-id:ksef.invoices.submitted/3/42"


def test_seller_header_must_match_and_be_well_formed() -> None:
    out = check_submission(sub(invoice(), **{"ksef-seller-nip": OTHER}), CHECKER, TODAY,
                           AttachmentPolicy())
    assert isinstance(out, Rejection) and out.reason == "seller-mismatch"
    out = check_submission(sub(invoice(), **{"ksef-seller-nip": "12"}), CHECKER, TODAY,
                           AttachmentPolicy())
    assert isinstance(out, Rejection) and out.reason == "bad-header"


def test_attachments_follow_the_sellers_context() -> None:
    xml = invoice(attachment=True)
    refused = check_submission(sub(xml), CHECKER, TODAY, AttachmentPolicy())
    assert isinstance(refused, Rejection) and refused.reason == "attachments-not-allowed"
    allowed = check_submission(sub(xml), CHECKER, TODAY, AttachmentPolicy(frozenset({SELLER})))
    assert isinstance(allowed, ValidatedInvoice) and allowed.has_attachments


def _validated(invoice_id: str, xml: bytes, correction: str | None = None) -> ValidatedInvoice:
    out = check_submission(sub(xml, key=invoice_id.encode()), CHECKER, TODAY,
                           AttachmentPolicy())
    assert isinstance(out, ValidatedInvoice)
    return ValidatedInvoice(**{**out.__dict__, "technical_correction_of": correction})


def test_dedupe_replay_passes_other_bytes_or_ids_are_duplicates() -> None:
    first = _validated("a", invoice(seed=1))
    stored, rej = dedupe(first, None)
    assert rej is None and stored is not None
    assert dedupe(first, stored) == (None, None)  # exact replay
    _, other_id = dedupe(_validated("b", invoice(seed=1)), stored)
    assert other_id is not None and other_id.reason == "duplicate" and other_id.code == 440
    assert other_id.details["original_invoice_id"] == "a"
    _, other_bytes = dedupe(_validated("a", invoice(seed=2)), stored)
    assert other_bytes is not None and "different content" in other_bytes.message


def test_technical_correction_replaces_its_original() -> None:
    first = _validated("a", invoice(seed=1))
    stored, _ = dedupe(first, None)
    fix = _validated("a-fix", invoice(seed=2), correction=first.sha256)
    new, rej = dedupe(fix, stored)
    assert rej is None and new is not None and fix.sha256 in new


@pytest.mark.parametrize(("header", "value"), [
    ("ksef-attachments", "yes"), ("ksef-attachments", "2"),
    ("ksef-technical-correction-of", "zzz"),
    ("ksef-technical-correction-of", base64.b64encode(b"\x01" * 31).decode()),
    ("ksef-technical-correction-of", "!" * 44),
])
def test_malformed_optional_headers_are_bad_headers(header: str, value: str) -> None:
    out = check_submission(sub(invoice(), **{header: value}), CHECKER, TODAY, AttachmentPolicy())
    assert isinstance(out, Rejection)
    assert (out.reason, out.code, out.details) == ("bad-header", 430, {"header": header})
    assert header in out.message


@pytest.mark.parametrize(("header", "value"), [
    ("ksef-attachments", "0"), ("ksef-attachments", "1"), ("ksef-attachments", ""),
    ("ksef-technical-correction-of", sha256_b64(b"the rejected original")),
])
def test_well_formed_optional_headers_pass(header: str, value: str) -> None:
    out = check_submission(sub(invoice(), **{header: value}), CHECKER, TODAY, AttachmentPolicy())
    assert isinstance(out, ValidatedInvoice)


def test_invoice_kinds_are_the_xsd_enumeration() -> None:
    from lxml import etree

    from pipeline.ksef.fa3 import INVOICE_KINDS
    from pipeline.ksef.fa3.schema import MAIN_SCHEMA, schema_directory

    xsd = etree.parse(str(schema_directory() / MAIN_SCHEMA))
    ns = {"xsd": "http://www.w3.org/2001/XMLSchema"}
    values = xsd.xpath("//xsd:simpleType[@name='TRodzajFaktury']//xsd:enumeration/@value",
                       namespaces=ns)
    assert tuple(values) == INVOICE_KINDS


def _rejection(stage: str, reason: str, **fields: object) -> Rejection:
    base: dict[str, object] = {"seller_nip": SELLER, "invoice_number": "FV/1",
                               "sha256": sha256_b64(b"x")}
    base.update(fields)
    return Rejection(invoice_id="a", stage=stage, code=450, reason=reason, message="m",
                     rejected_at="2026-11-20T10:00:00+00:00", **base)  # type: ignore[arg-type]


def test_a_rejection_after_validation_releases_every_key_the_invoice_may_hold() -> None:
    rel = release_for(_rejection("upo", "semantic"))
    assert rel is not None
    assert (rel.invoice_id, rel.seller_nip, rel.invoice_number, rel.sha256) == (
        "a", SELLER, "FV/1", sha256_b64(b"x"))
    first = _validated("a", invoice(seed=1))
    assert duplicate_key(first) in held_keys(rel)
    assert routing_key(rel.seller_nip, rel.invoice_number) == routing_key(
        first.seller_nip, first.invoice_number)
    for stage, reason in [("submit", "no-ksef-token"), ("submit", "session-445"),
                          ("pack", "decryption"), ("seal", "unknown")]:
        assert release_for(_rejection(stage, reason)) is not None, (stage, reason)


@pytest.mark.parametrize(("stage", "reason", "fields"), [
    ("validate", "schema", {}),            # never held a key
    ("validate", "duplicate", {}),         # the holder is another invoice
    ("upo", "duplicate", {}),              # KSeF's 440: the number is taken in KSeF
    ("upo", "semantic", {"sha256": None}),  # cannot tell which invoice holds the key
    ("pack", "unknown", {"invoice_number": None, "seller_nip": None}),
])
def test_rejections_that_must_not_release_a_key(stage: str, reason: str,
                                                fields: dict[str, object]) -> None:
    assert release_for(_rejection(stage, reason, **fields)) is None


def test_a_released_number_takes_a_corrected_invoice() -> None:
    first = _validated("a", invoice(seed=1))
    stored, _ = dedupe(first, None)
    assert stored == held_value(first.invoice_id, first.sha256)
    # after the release the table holds nothing for the key: the fix passes as new
    fixed = _validated("a-2", invoice(seed=2))
    assert dedupe(fixed, None)[1] is None
    assert dedupe(fixed, stored)[1] is not None  # without the release it is a duplicate
