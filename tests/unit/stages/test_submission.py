"""The validate stage's decisions without Kafka: contract rules and reasons."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from pipeline.demo.samples import bad_invoices, make_invoice, seller_nips
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.ksef.numbers import sha256_b64
from pipeline.stages.s1_validate_seal.submission import (
    ALL_REASONS,
    AttachmentPolicy,
    CheckedInvoice,
    Submission,
    check_submission,
)
from topics.records import KafkaRef, Rejection

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
    assert isinstance(out, CheckedInvoice)
    assert out.xml == xml
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
    assert isinstance(allowed, CheckedInvoice) and allowed.has_attachments


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
    assert isinstance(out, CheckedInvoice)


def test_invoice_kinds_are_the_xsd_enumeration() -> None:
    from lxml import etree

    from pipeline.ksef.fa3 import INVOICE_KINDS
    from pipeline.ksef.fa3.schema import MAIN_SCHEMA, schema_directory

    xsd = etree.parse(str(schema_directory() / MAIN_SCHEMA))
    ns = {"xsd": "http://www.w3.org/2001/XMLSchema"}
    values = xsd.xpath("//xsd:simpleType[@name='TRodzajFaktury']//xsd:enumeration/@value",
                       namespaces=ns)
    assert tuple(values) == INVOICE_KINDS
