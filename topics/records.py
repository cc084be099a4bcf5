"""Record types carried by the catalog topics (values are UTF-8 JSON objects).

Declared once here; `schemas/*.json` mirrors them for producers and consumers outside
Python and `tests/unit/test_schemas.py` keeps the two in agreement. Plain dataclasses,
not Faust records, so billing-side tools and the pure domain can use them without Faust.
Times are ISO 8601 with offset; dates are ISO `YYYY-MM-DD` (Polish calendar dates).
Invoice bytes never travel as base64: `ksef.invoices.submitted` carries them raw and
`ksef.invoices.sealed` is a binary record (`topics.sealed`) that encrypts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class KafkaRef:
    """Where a record lives, so anything derived can be rebuilt from Kafka."""

    topic: str
    partition: int
    offset: int


def origin_text(ref: Any) -> str | None:
    """A KafkaRef (or its dict) as "topic/partition/offset"; None when unknown."""
    if ref is None:
        return None
    if isinstance(ref, dict):
        return f"{ref.get('topic')}/{ref.get('partition')}/{ref.get('offset')}"
    return f"{ref.topic}/{ref.partition}/{ref.offset}"


@dataclass(frozen=True, slots=True)
class SealedInvoice:
    """`ksef.invoices.sealed`, keyed by seller NIP: the metadata of an invoice encrypted at
    rest. The record is binary (see `topics.sealed`): this metadata, then the AES-256-GCM
    ciphertext of the private part and the (deflated) invoice under `key_id`."""

    invoice_id: str
    seller_nip: str
    invoice_number: str
    issue_date: str
    kind: str
    size: int
    sha256: str
    has_attachments: bool
    mode: str
    key_id: str
    qr_code_1: str
    received_at: str
    sealed_at: str
    origin: KafkaRef
    deadline: str | None = None
    deadline_status: str = "due"
    qr_code_2: str | None = None
    source: str | None = None
    technical_correction_of: str | None = None
    compression: str = "deflate"  # of the invoice inside the ciphertext: deflate | none
    # CRC-32 (zlib) of the invoice's exact bytes: with `size`, what a ZIP entry header
    # needs, so pack writes the deflated invoice as it is without inflating it (records
    # sealed before it was added have none; pack then inflates).
    crc32: int | None = None


@dataclass(frozen=True, slots=True)
class SealedPrivate:
    """The encrypted part of a sealed record besides the invoice: personal data that
    only a holder of the keyring may read (a sole trader's NIP identifies a person)."""

    buyer_nip: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """`ksef.invoices.rejected`: why an invoice will not (or did not) get a KSeF number."""

    invoice_id: str
    stage: str
    code: int
    reason: str
    message: str
    rejected_at: str
    details: dict[str, Any] = field(default_factory=dict)
    seller_nip: str | None = None
    invoice_number: str | None = None
    sha256: str | None = None
    received_at: str | None = None
    origin: KafkaRef | None = None
    session_ref: str | None = None


@dataclass(frozen=True, slots=True)
class DedupeRelease:
    """`ksef.dedupe.releases` (internal): an invoice that will not reach KSeF gives its
    (seller NIP, RodzajFaktury, P_2) back, so a corrected invoice may use the number."""

    invoice_id: str
    seller_nip: str
    invoice_number: str
    sha256: str
    stage: str
    reason: str
    requested_at: str


@dataclass(frozen=True, slots=True)
class PackagePart:
    """One encrypted part: size/sha256 as declared to KSeF, offset/plain_size in the package."""

    ordinal: int
    size: int
    sha256: str
    offset: int
    plain_size: int


@dataclass(frozen=True, slots=True)
class PackedInvoice:
    invoice_id: str
    invoice_number: str
    sha256: str
    size: int
    entry: str
    ref: KafkaRef
    mode: str
    deadline: str | None = None
    # The `.submitted` record it came from: tells a producer's replay (a new record) from
    # a redelivery or a second sealing of this very submission.
    origin: KafkaRef | None = None


@dataclass(frozen=True, slots=True)
class PackedBatch:
    """`ksef.batches.packed`: the manifest of one batch package (never a plaintext key).

    Invoices are named by their `ksef.invoices.sealed` coordinates, so any worker can
    rebuild the archive byte for byte (same deflate level and zlib version) from Kafka.
    """

    batch_id: str
    seller_nip: str
    archive_format: str
    package_sha256: str
    package_size: int
    parts: list[PackagePart]
    wrapped_key_b64: str
    iv_b64: str
    deflate_level: int
    zlib_version: str
    invoices: list[PackedInvoice]
    packed_at: str
    spool_dir: str
    offline_mode: bool
    earliest_deadline: str | None = None
    public_key_id: str | None = None
    # The topics of the invoices given as rows (`topics.packed_rows`): every ref's and
    # every origin's; absent on records that list the invoices as objects only.
    sealed_topic: str | None = None
    origin_topic: str | None = None


@dataclass(frozen=True, slots=True)
class SessionStep:
    """`ksef.sessions`: every step of a KSeF session, written before/after each side effect."""

    batch_id: str
    seller_nip: str
    step: str
    at: str
    session_ref: str | None = None
    kind: str = "batch"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InvoiceOutcome:
    """`ksef.invoices.outcomes`: the invoice is in KSeF."""

    invoice_id: str
    seller_nip: str
    invoice_number: str
    ksef_number: str
    acquisition_date: str
    invoicing_mode: str
    session_ref: str
    sha256: str
    recorded_at: str
    upo_ref: str | None = None


@dataclass(frozen=True, slots=True)
class UpoDocument:
    """`ksef.upo`: the metadata of a session UPO page; the record's value is this, framed,
    followed by the UPO's exact bytes (`topics.upo_document`)."""

    session_ref: str
    seller_nip: str
    upo_ref: str
    fetched_at: str
    # What follows the metadata: "none", the UPO's bytes; "deflate", their raw DEFLATE
    # stream (RFC 1951). Records without it are "none".
    compression: str = "none"


@dataclass(frozen=True, slots=True)
class Announcement:
    """`ksef.announcements` (compacted by id): a Latarnia or operator message, latest version."""

    id: str
    event_id: str
    category: str
    type: str
    start: str
    version: int
    published: str
    source: str
    title: str = ""
    text: str = ""
    end: str | None = None
    first_published: str | None = None  # when version 1 came out (kept across versions)
    # An operator's version: who published it (name and token fingerprint, or the OS user
    # for `announce` straight to Kafka); `published` says when. None for Latarnia's.
    changed_by: str | None = None


@dataclass(frozen=True, slots=True)
class ModeWindow:
    category: str
    start: str
    end: str | None
    event_id: str
    announced: str | None = None
    source: str = "announcement"  # announcement (MF / operator) | observed (our own view)


@dataclass(frozen=True, slots=True)
class ModeState:
    """`ksef.mode`: current KSeF state as the pipeline believes it, with the outage history."""

    state: str
    since: str
    updated_at: str
    windows: list[ModeWindow] = field(default_factory=list)
    reason: str = ""
    ksef_reachable: bool = True  # False while the pipeline itself sees KSeF failing
    latarnia_reachable: bool = True
    announcements: list[Announcement] = field(default_factory=list)  # in force + history


@dataclass(frozen=True, slots=True)
class DeadlineRecord:
    """`ksef.deadlines` (compacted by invoice id; tombstone once the invoice is in KSeF)."""

    invoice_id: str
    seller_nip: str
    issue_date: str
    status: str
    mode: str
    basis: str
    computed_at: str
    deadline: str | None = None
    invoice_number: str | None = None
    sealed_at: str | None = None
    computed_by: str = "tracker"  # sealed (first record of an invoice) | tracker


@dataclass(frozen=True, slots=True)
class Alert:
    """`ksef.alerts`: something an operator must look at."""

    alert_id: str
    kind: str
    severity: str
    message: str
    at: str
    seller_nip: str | None = None
    invoice_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HeldRelease:
    """`ksef.control` (compacted by `release:<NIP>`): an operator asks that the invoices of a
    context held for its credentials be rejected instead of waiting.

    It covers every batch packed up to `requested_at` that cannot authenticate when a
    worker next tries it; batches packed later are held again as usual.
    """

    request_id: str
    seller_nip: str
    action: str  # "reject"
    requested_at: str
    requested_by: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Envelope:
    """Stand-in for the raw `ksef.invoices.submitted` record (value = XML bytes, not JSON)."""

    invoice_id: str
    xml: bytes
    headers: dict[str, str] = field(default_factory=dict)
