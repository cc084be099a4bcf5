"""The validate stage's decisions as plain functions (no Faust), so they are unit-tested
and benchmarked directly: one submitted record -> a checked invoice or a rejection.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace

from pipeline.clock import iso
from pipeline.ksef.fa3 import REASONS, Finding, InvoiceChecker
from topics.headers import (
    HEADER_ATTACHMENTS,
    HEADER_CORRECTION,
    HEADER_SELLER,
    HEADER_SOURCE,
    HEADERS_MAX_BYTES,
    HEADERS_MAX_COUNT,
    KEY_MAX_BYTES,
    KNOWN_HEADERS,
    SOURCE_MAX_CHARS,
)
from topics.records import KafkaRef, Rejection
from topics.rejections import build_rejection

STAGE = "validate"
# Not printable: controls (C0, DEL, C1), format characters (bidi overrides, zero-width),
# surrogates, private use, line and paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_NIP = re.compile(rb"[0-9]{10}")

# Reasons this stage adds to the FA(3) vocabulary (code, description).
STAGE_REASONS: dict[str, tuple[int, str]] = {
    "missing-invoice-id": (430, "the Kafka record has no key (invoice id) or it is not UTF-8"),
    "bad-key": (430, f"the record key (invoice id) is over {KEY_MAX_BYTES} bytes or has a "
                "character that is not printable (a control character)"),
    "bad-header": (430, "a ksef-* header is malformed or unknown (e.g. seller NIP not 10 "
                   "digits), or the headers are too large"),
    "seller-mismatch": (450, "ksef-seller-nip header differs from Podmiot1/NIP in the XML"),
}
ALL_REASONS: dict[str, tuple[int, str]] = {**REASONS, **STAGE_REASONS}


@dataclass(frozen=True)
class AttachmentPolicy:
    """Which seller contexts have attachments enabled in KSeF (KSEF_ATTACHMENT_SELLERS)."""

    sellers: frozenset[str] = frozenset()
    everyone: bool = False

    @classmethod
    def parse(cls, raw: str) -> AttachmentPolicy:
        """From KSEF_ATTACHMENT_SELLERS' value: NIPs separated by commas, or `*`."""
        raw = raw.strip()
        if raw == "*":
            return cls(everyone=True)
        return cls(frozenset(n.strip() for n in raw.split(",") if n.strip()))

    def allows(self, seller_nip: str | None) -> bool:
        return self.everyone or (seller_nip is not None and seller_nip in self.sellers)


@dataclass(frozen=True)
class CheckedInvoice:
    """An invoice that passed every stateless check, with what sealing needs (in memory
    only: it is sealed before anything is produced)."""

    invoice_id: str
    seller_nip: str
    invoice_number: str
    issue_date: str
    kind: str
    size: int
    sha256: str
    has_attachments: bool
    received_at: str
    origin: KafkaRef
    xml: bytes
    buyer_nip: str | None = None
    source: str | None = None
    technical_correction_of: str | None = None


@dataclass(frozen=True)
class Submission:
    """One record of `ksef.invoices.submitted` as the consumer saw it."""

    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes]
    origin: KafkaRef
    received_at: str

    def invoice_id(self) -> str | None:
        if not self.key:
            return None
        try:
            return self.key.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def header(self, name: str) -> str | None:
        raw = self.headers.get(name)
        if raw is None:
            return None
        return raw.decode("utf-8", errors="replace").strip()


def reject(sub: Submission, reason: str, message: str, *, invoice_id: str | None = None,
           details: dict[str, object] | None = None, seller_nip: str | None = None,
           invoice_number: str | None = None, sha256: str | None = None) -> Rejection:
    ref = sub.origin
    fallback_id = f"no-id:{ref.topic}/{ref.partition}/{ref.offset}"
    return build_rejection(
        invoice_id=invoice_id or sub.invoice_id() or fallback_id,
        stage=STAGE, code=ALL_REASONS[reason][0], reason=reason, message=message,
        rejected_at=iso(), details=dict(details or {}), seller_nip=seller_nip,
        invoice_number=invoice_number, sha256=sha256, received_at=sub.received_at, origin=ref,
    )


def unprintable(text: str) -> int | None:
    """Index of the first character of `text` that is not printable, or None."""
    for index, char in enumerate(text):
        if (char < " " or "\x7f" <= char <= "\xa0" or char > "~") and \
                unicodedata.category(char) in _UNPRINTABLE:
            return index
    return None


def _character(char: str) -> str:
    return f"U+{ord(char):04X}"


def key_problem(key: bytes) -> str | None:
    """Why a UTF-8 record key is no acceptable invoice id, or None."""
    if len(key) > KEY_MAX_BYTES:
        return (f"record key (invoice id) has {len(key):,} bytes; at most {KEY_MAX_BYTES} "
                "bytes of UTF-8 are accepted")
    text = key.decode("utf-8")
    bad = unprintable(text)
    if bad is not None:
        return (f"record key (invoice id) has the character {_character(text[bad])} at "
                f"position {bad}; an invoice id is printable text without control characters")
    return None


def _headers_problem(sub: Submission) -> tuple[str, str] | None:
    """(header, why) when the headers as a whole are too many or too large, or a ksef-*
    header is not one of the contract's (a misspelt header is not silently ignored)."""
    total = sum(len(name.encode("utf-8", "surrogatepass")) + len(value)
                for name, value in sub.headers.items())
    if total > HEADERS_MAX_BYTES or len(sub.headers) > HEADERS_MAX_COUNT:
        return "*", (f"the record has {len(sub.headers)} headers of {total:,} bytes; at most "
                     f"{HEADERS_MAX_COUNT} headers of {HEADERS_MAX_BYTES:,} bytes in all are "
                     "accepted")
    for name in sub.headers:
        if name.lower().startswith("ksef-") and name not in KNOWN_HEADERS:
            return name, (f"unknown header {name!r}; the ksef-* headers are "
                          + ", ".join(sorted(KNOWN_HEADERS)))
    return None


def _source_problem(sub: Submission) -> str | None:
    raw = sub.headers.get(HEADER_SOURCE)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"{HEADER_SOURCE} must be UTF-8 text"
    if len(text) > SOURCE_MAX_CHARS:
        return (f"{HEADER_SOURCE} has {len(text):,} characters; at most {SOURCE_MAX_CHARS} "
                "are accepted")
    bad = unprintable(text)
    if bad is not None:
        return (f"{HEADER_SOURCE} has the character {_character(text[bad])} at position "
                f"{bad}; it must be printable text without control characters")
    return None


def _header_problem(sub: Submission) -> tuple[str, str] | None:
    """(header, why) for a malformed optional header: a producer bug is reported, not
    guessed around. The XML, not the header, decides whether attachments are present."""
    problem = _headers_problem(sub)
    if problem is not None:
        return problem
    raw_nip = sub.headers.get(HEADER_SELLER)
    if raw_nip is not None and _NIP.fullmatch(raw_nip) is None:
        return HEADER_SELLER, (f"{HEADER_SELLER} must be exactly 10 ASCII digits, got "
                               f"{len(raw_nip)} bytes")
    source = _source_problem(sub)
    if source is not None:
        return HEADER_SOURCE, source
    attachments = sub.header(HEADER_ATTACHMENTS)
    if attachments not in (None, "", "0", "1"):
        return HEADER_ATTACHMENTS, (f"{HEADER_ATTACHMENTS} must be 1 (attachments) or 0, "
                                    f"got {attachments[:40]!r}")
    corrected = sub.header(HEADER_CORRECTION)
    if corrected and not _is_sha256_b64(corrected):
        return HEADER_CORRECTION, (f"{HEADER_CORRECTION} must be the KSeF hash of the rejected "
                                   "original: SHA-256 in Base64 (44 characters), got "
                                   f"{len(corrected)} characters")
    return None


def _is_sha256_b64(text: str) -> bool:
    try:
        return len(text) == 44 and len(base64.b64decode(text, validate=True)) == 32
    except ValueError:
        return False


def check_submission(sub: Submission, checker: InvoiceChecker, today: dt.date,
                     policy: AttachmentPolicy) -> CheckedInvoice | Rejection:
    """Every stateless check KSeF would apply, plus the input contract's own rules."""
    invoice_id = sub.invoice_id()
    if invoice_id is None:
        return reject(sub, "missing-invoice-id",
                      "record key must be the invoice id as UTF-8 text; it is "
                      + ("missing" if not sub.key else "not valid UTF-8"))
    assert sub.key is not None
    bad_key = key_problem(sub.key)
    if bad_key is not None:
        return reject(sub, "bad-key", bad_key, details={"key_bytes": len(sub.key)})
    data = sub.value or b""
    header_problem = _header_problem(sub)
    if header_problem is not None:
        name, message = header_problem
        return reject(sub, "bad-header", message, details={"header": name})
    header_nip = sub.header(HEADER_SELLER)
    # Attachments depend on the seller's context, known only after parsing: check with
    # attachments allowed, then apply the context's policy (the checker's last rule too).
    result = checker.check(data, today=today, attachments_allowed=True)
    facts = result.facts
    seller = header_nip or facts.seller_nip
    finding = result.finding
    if finding is None and facts.has_attachments and not policy.allows(seller):
        finding = Finding(ALL_REASONS["attachments-not-allowed"][0], "attachments-not-allowed",
                          f"the invoice carries an attachment (Zalacznik) but attachments are "
                          f"not enabled for seller {seller} (KSEF_ATTACHMENT_SELLERS)",
                          path="/Faktura/Zalacznik")
    if finding is not None:
        details: dict[str, object] = {}
        if finding.line is not None:
            details["line"] = finding.line
        if finding.path is not None:
            details["path"] = finding.path
        rej = reject(sub, finding.reason, finding.message, details=details, seller_nip=seller,
                     invoice_number=facts.invoice_number, sha256=facts.sha256_b64 or None)
        return replace(rej, code=finding.code)
    if header_nip is not None and facts.seller_nip is not None and header_nip != facts.seller_nip:
        return reject(sub, "seller-mismatch",
                      f"{HEADER_SELLER} header {header_nip} differs from Podmiot1 NIP "
                      f"{facts.seller_nip}", seller_nip=header_nip,
                      invoice_number=facts.invoice_number, sha256=facts.sha256_b64,
                      details={"path": "/Faktura/Podmiot1/DaneIdentyfikacyjne/NIP"})
    assert seller is not None and facts.invoice_number is not None
    assert facts.issue_date is not None and facts.kind is not None
    return CheckedInvoice(
        invoice_id=invoice_id, seller_nip=seller, invoice_number=facts.invoice_number,
        issue_date=facts.issue_date.isoformat(), kind=facts.kind, size=facts.size,
        sha256=facts.sha256_b64, has_attachments=facts.has_attachments,
        received_at=sub.received_at, origin=sub.origin, xml=data, buyer_nip=facts.buyer_nip,
        source=sub.header(HEADER_SOURCE),
        technical_correction_of=sub.header(HEADER_CORRECTION) or None,
    )
