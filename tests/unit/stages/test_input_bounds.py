"""Input bounds (issue 16 point 2): every field of a submitted record is bounded before
anything is produced, every rejection is bounded whatever the input quoted, and a record
no topic can take is refused before it is sent."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.stages.s1_validate_seal.submission import (
    ALL_REASONS,
    KEY_MAX_BYTES,
    SOURCE_MAX_CHARS,
    AttachmentPolicy,
    CheckedInvoice,
    Submission,
    check_submission,
)
from topics.catalog import REJECTED, SEALED, RecordTooLarge, check_record_size
from topics.codec import decode, encode
from topics.records import KafkaRef, Rejection
from topics.rejections import MESSAGE_MAX, REJECTION_MAX_BYTES, build_rejection

TODAY = dt.date(2026, 11, 20)
CHECKER = InvoiceChecker()
(SELLER,) = seller_nips(1, seed=16)
ORIGIN = KafkaRef("ksef.invoices.submitted", 1, 7)
BOUND = 64 * 1024  # what the issue asks of any rejection record


def sub(key: bytes | None = b"inv-1", value: bytes | None = None,
        **headers: bytes) -> Submission:
    if value is None:
        value = make_invoice(seller_nip=SELLER, number="FV/16", issue_date=TODAY, seed=16)
    return Submission(key, value, dict(headers), ORIGIN, "2026-11-20T10:00:00+00:00")


def check(submission: Submission) -> CheckedInvoice | Rejection:
    return check_submission(submission, CHECKER, TODAY, AttachmentPolicy())


def rejected(submission: Submission) -> Rejection:
    out = check(submission)
    assert isinstance(out, Rejection), "accepted"
    record = encode(out)
    assert len(record) < BOUND and len(out.invoice_id.encode()) <= 4 * 256
    assert out.code == ALL_REASONS[out.reason][0]
    assert decode(Rejection, record) == out
    return out


def headers(**named: bytes) -> dict[str, bytes]:
    return {name.replace("_", "-"): value for name, value in named.items()}


# -- the key (invoice id) ------------------------------------------------------------

def test_a_600_kib_key_is_rejected_with_a_bounded_record() -> None:
    key = b"K" * (600 * 1024)
    out = rejected(sub(key))
    assert out.reason == "bad-key" and out.code == 430
    assert "614,400 bytes" in out.message
    assert out.invoice_id.startswith("KKK") and len(out.invoice_id) == 256
    assert out.details["truncated"] == ["invoice_id"]
    assert out.details["invoice_id_bytes"] == len(key)
    assert len(out.details["invoice_id_sha256"]) == 64
    assert out.origin == ORIGIN


def test_a_key_of_exactly_the_limit_passes() -> None:
    assert isinstance(check(sub(b"k" * KEY_MAX_BYTES)), CheckedInvoice)
    assert rejected(sub(b"k" * (KEY_MAX_BYTES + 1))).reason == "bad-key"


@pytest.mark.parametrize("key", [b"inv\n1", b"inv\r\n1", b"inv\x001", b"inv\x7f1",
                                 "inv\u202e1".encode(), "inv\u200b1".encode(),
                                 "inv\x851".encode()])
def test_a_key_with_a_control_or_format_character_is_rejected(key: bytes) -> None:
    out = rejected(sub(key))
    assert out.reason == "bad-key" and "U+" in out.message


def test_printable_unicode_keys_pass() -> None:
    assert isinstance(check(sub("FV/2026/Łódź-ĄĘ 12".encode())), CheckedInvoice)


# -- the headers ---------------------------------------------------------------------

def test_a_huge_source_of_control_bytes_is_rejected_not_carried() -> None:
    out = rejected(sub(**headers(ksef_source=b"\x01" * 1_400_000)))
    assert out.reason == "bad-header" and out.details["header"] == "*"


def test_a_5_mb_source_with_crlf_and_script_is_rejected() -> None:
    source = (b"billing\r\n<script>alert(1)</script>" * 150_000)[:5_000_000]
    out = rejected(sub(**headers(ksef_source=source)))
    assert out.reason == "bad-header"


@pytest.mark.parametrize(("source", "why"), [
    (b"erp\r\nX-Injected: 1", "U+000D"),
    (b"erp\x1b[31m", "U+001B"),
    ("erp\u2028".encode(), "U+2028"),
    (b"\xff\xfe", "UTF-8"),
    (b"s" * (SOURCE_MAX_CHARS + 1), "characters"),
])
def test_ksef_source_must_be_short_printable_text(source: bytes, why: str) -> None:
    out = rejected(sub(**headers(ksef_source=source)))
    assert out.reason == "bad-header" and out.details["header"] == "ksef-source"
    assert why in out.message


def test_a_source_at_the_limit_and_printable_passes() -> None:
    source = ("Fakturownia Łódź <erp> " * 20)[:SOURCE_MAX_CHARS]
    out = check(sub(**headers(ksef_source=source.encode())))
    assert isinstance(out, CheckedInvoice) and out.source == source.strip()


@pytest.mark.parametrize("nip", [SELLER.encode() + b" ", b" " + SELLER.encode(),
                                 "١٢٣٤٥٦٧٨٩٠".encode(), b"1" * 11, SELLER.encode()[:9]])
def test_seller_nip_header_is_exactly_ten_ascii_digits(nip: bytes) -> None:
    out = rejected(sub(**headers(ksef_seller_nip=nip)))
    assert out.reason == "bad-header" and out.details["header"] == "ksef-seller-nip"


def test_seller_nip_header_of_ten_digits_passes() -> None:
    assert isinstance(check(sub(**headers(ksef_seller_nip=SELLER.encode()))), CheckedInvoice)


@pytest.mark.parametrize("name", ["ksef-seller_nip", "KSEF-Source", "ksef-priority"])
def test_unknown_ksef_headers_are_rejected(name: str) -> None:
    out = rejected(sub(**{name: b"1"}))
    assert out.reason == "bad-header" and out.details["header"] == name


def test_other_headers_pass_but_are_bounded_in_total() -> None:
    assert isinstance(check(sub(**{"traceparent": b"00-" + b"a" * 50})), CheckedInvoice)
    out = rejected(sub(**{"x-blob": b"b" * 20_000}))
    assert out.reason == "bad-header" and "20,006 bytes" in out.message
    many = {f"x-{i}": b"1" for i in range(65)}
    assert rejected(sub(**many)).reason == "bad-header"


def test_the_invoice_keeps_ksefs_3_mb_limit() -> None:
    out = rejected(sub(value=b"<a>" + b" " * 3_000_000 + b"</a>"))
    assert out.reason == "too-large" and "3,000,000" in out.message


# -- messages quoting the invoice ----------------------------------------------------

@pytest.mark.parametrize("bad", [
    b"<" + b"Q" * 9000 + b">1</" + b"Q" * 9000 + b">",  # unknown element
    b"<" + b"Q" * 9000 + b">1</" + b"R" * 9000 + b">",  # tag mismatch
    b"<?" + b"X" * 9000 + b" x?><P_2>FV/16</P_2>",  # processing instruction
    b"<P_2>" + b"a'b" * 20000 + b"</P_2>",  # value with apostrophes
])
def test_messages_quote_only_a_short_excerpt_of_the_invoice(bad: bytes) -> None:
    xml = make_invoice(seller_nip=SELLER, number="FV/16", issue_date=TODAY, seed=16)
    out = rejected(sub(value=xml.replace(b"<P_2>FV/16</P_2>", bad)))
    assert len(out.message) <= MESSAGE_MAX
    longest_run = max(len(run) for run in out.message.replace("'", " ").split())
    assert longest_run <= 200, out.message
    assert len(str(out.details.get("path", ""))) <= 300


# -- the rejection builder -----------------------------------------------------------

def test_the_builder_keeps_short_fields_as_they_are() -> None:
    out = build_rejection(invoice_id="inv-1", stage="validate", code=430, reason="schema",
                          message="m", rejected_at="t", details={"line": 3, "path": "/a"},
                          origin=ORIGIN)
    assert out == Rejection(invoice_id="inv-1", stage="validate", code=430, reason="schema",
                            message="m", rejected_at="t", details={"line": 3, "path": "/a"},
                            origin=ORIGIN)


def test_the_builder_bounds_every_field_and_says_which() -> None:
    control = "\x01" * 1_000_000
    out = build_rejection(
        invoice_id=control, stage=control, code=430, reason=control, message=control,
        rejected_at=control, seller_nip=control, invoice_number=control, sha256=control,
        received_at=control, session_ref=control, origin=KafkaRef(control, 1, 2),
        details={f"k{i}{control}": control for i in range(100)})
    record = encode(out)
    assert len(record) <= REJECTION_MAX_BYTES < BOUND
    assert set(out.details["truncated"]) == {
        "invoice_id", "stage", "reason", "message", "rejected_at", "seller_nip",
        "invoice_number", "sha256", "received_at", "session_ref", "origin", "details"}
    assert out.message.endswith("...") and len(out.message) == MESSAGE_MAX


def test_the_builder_cuts_structured_details_and_keeps_small_ones() -> None:
    big: dict[str, Any] = {"errors": [{"code": i, "text": "x" * 100} for i in range(1000)]}
    out = build_rejection(invoice_id="i", stage="submit", code=450, reason="semantic",
                          message="m", rejected_at="t", details={"ksef": big, "n": 1})
    assert isinstance(out.details["ksef"], str) and len(out.details["ksef"]) <= 500
    assert out.details["n"] == 1 and out.details["truncated"] == ["details"]
    assert len(orjson.dumps(out)) < 4096


# -- records no topic takes ----------------------------------------------------------

def test_a_record_over_the_topic_limit_is_refused_before_it_is_sent() -> None:
    check_record_size(REJECTED, b"k" * 100, b"v" * 500_000)
    with pytest.raises(RecordTooLarge) as raised:
        check_record_size(REJECTED, b"k" * 600 * 1024, b"v" * 500_000)
    assert raised.value.limit == 1024 * 1024 and "ksef.invoices.rejected" in str(raised.value)
    check_record_size(SEALED, b"5260250274", b"v" * 8_000_000)
    with pytest.raises(RecordTooLarge):
        check_record_size(SEALED, b"5260250274", b"v" * (8 * 1024 * 1024))
