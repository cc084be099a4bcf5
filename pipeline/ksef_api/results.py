"""What KSeF answered, as frozen dataclasses the stages can rely on (no raw dicts).

Converted from the `ksef-client` SDK's response models at the edge, so a change in the
SDK's models stays inside this module. Anything missing that the contract requires
becomes `KsefProtocolError` here rather than a `None` deep inside a stage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ksef_client import models as sdk

from pipeline.ksef.crypto import SessionKey
from pipeline.ksef_api.errors import KsefProtocolError

_EMPTY: Mapping[str, str | None] = MappingProxyType({})
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

# Session status codes (DOMAIN.md): 100 open; 150 batch processing; 170 online closed.
SESSION_OPEN = 100
SESSION_PROCESSING = 150
SESSION_CLOSED = 170
SESSION_DONE = 200
SESSION_CANCELLED = 440  # a batch session never closed within its upload window
SESSION_STATUS_FORBIDS = 21180  # error code: the session's status forbids the operation
INVOICE_OK = 200
DUPLICATE = 440


def parse_api_datetime(text: str | None, what: str) -> dt.datetime:
    """KSeF timestamps (7-digit fractions, `Z` or offset) as aware UTC datetimes."""
    if not text:
        raise KsefProtocolError(f"{what} is missing")
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise KsefProtocolError(f"{what} is not an ISO 8601 date-time: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _optional_datetime(text: str | None, what: str) -> dt.datetime | None:
    return None if not text else parse_api_datetime(text, what)


def redact_url(url: str) -> str:
    """A pre-signed URL carries its credential in the query: never show that part."""
    parts = urlsplit(url)
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


@dataclass(frozen=True)
class UpoPage:
    reference_number: str
    download_url: str
    expires_at: dt.datetime | None


@dataclass(frozen=True)
class SessionStatus:
    """`GET /sessions/{ref}`: the session's state, counts and (once closed) its UPO pages."""

    reference_number: str
    code: int
    description: str
    details: tuple[str, ...]
    invoice_count: int | None
    successful_count: int | None
    failed_count: int | None
    upo_pages: tuple[UpoPage, ...]
    created: dt.datetime
    updated: dt.datetime
    valid_until: dt.datetime | None

    @property
    def upo_references(self) -> tuple[str, ...]:
        return tuple(page.reference_number for page in self.upo_pages)

    @property
    def is_terminal(self) -> bool:
        """Processing has ended (200 = at least one invoice accepted, >= 300 failed)."""
        return self.code >= SESSION_DONE

    @property
    def succeeded(self) -> bool:
        return self.code == SESSION_DONE


@dataclass(frozen=True)
class InvoiceResult:
    """One invoice of a session (`/sessions/{ref}/invoices[/failed]`).

    Correlate with your own invoice by `invoice_hash` (SHA-256 of the plaintext, base64).
    """

    ordinal: int
    reference_number: str
    invoice_hash: str
    invoicing_date: dt.datetime
    status_code: int
    status_description: str
    status_details: tuple[str, ...] = ()
    extensions: Mapping[str, str | None] = field(default_factory=lambda: _EMPTY, hash=False)
    invoice_number: str | None = None
    ksef_number: str | None = None
    file_name: str | None = None
    acquisition_date: dt.datetime | None = None
    permanent_storage_date: dt.datetime | None = None
    invoicing_mode: str | None = None  # "Online" / "Offline"

    @property
    def accepted(self) -> bool:
        return self.status_code == INVOICE_OK and self.ksef_number is not None

    @property
    def is_final(self) -> bool:
        return self.status_code >= INVOICE_OK

    @property
    def original_ksef_number(self) -> str | None:
        """For a 440 duplicate: the KSeF number the first copy received."""
        return self.extensions.get("originalKsefNumber")

    @property
    def original_session_reference(self) -> str | None:
        return self.extensions.get("originalSessionReferenceNumber")


@dataclass(frozen=True)
class InvoicePage:
    invoices: tuple[InvoiceResult, ...]
    continuation_token: str | None


@dataclass(frozen=True)
class Upo:
    """A UPO document (XML bytes as KSeF sent them; signed, so never re-encoded)."""

    session_reference: str
    reference_number: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class PartUpload:
    """Where and how to PUT one encrypted part (no KSeF token goes there)."""

    ordinal: int
    method: str
    url: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS, hash=False)

    def __repr__(self) -> str:
        url = redact_url(self.url)
        return f"PartUpload(ordinal={self.ordinal}, method={self.method}, url={url})"


UPLOAD_MINUTES_PER_PART = 20


@dataclass(frozen=True)
class BatchSession:
    """An opened batch session: its reference and one upload instruction per part."""

    reference_number: str
    part_uploads: tuple[PartUpload, ...]
    opened_at: dt.datetime

    @property
    def upload_window_ends(self) -> dt.datetime:
        """KSeF accepts parts for 20 minutes per declared part, counted from the open."""
        minutes = UPLOAD_MINUTES_PER_PART * len(self.part_uploads)
        return self.opened_at + dt.timedelta(minutes=minutes)


@dataclass(frozen=True)
class SessionSummary:
    """One row of `GET /sessions`: enough to recognise a session opened before a crash."""

    reference_number: str
    code: int
    description: str
    created: dt.datetime
    updated: dt.datetime
    valid_until: dt.datetime | None
    total_count: int
    successful_count: int
    failed_count: int


@dataclass(frozen=True)
class SessionListPage:
    sessions: tuple[SessionSummary, ...]
    continuation_token: str | None


@dataclass(frozen=True)
class OnlineSession:
    """An opened interactive session and the AES key its invoices are encrypted with."""

    reference_number: str
    valid_until: dt.datetime
    key: SessionKey


@dataclass(frozen=True)
class SentInvoice:
    """`POST /sessions/online/{ref}/invoices` accepted the invoice for processing."""

    session_reference: str
    reference_number: str
    invoice_hash: str
    invoice_size: int


V = TypeVar("V")


def required(value: V | None, what: str) -> V:
    """A field the contract requires; the SDK's lenient models may leave it None or ""."""
    if value is None or value == "":
        raise KsefProtocolError(f"KSeF answer lacks {what}")
    return value


def _tuple_of_str(value: list[str] | None) -> tuple[str, ...]:
    return tuple(value or ())


def _enum_text(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def session_status_from(reference: str, model: sdk.SessionStatusResponse) -> SessionStatus:
    pages = () if model.upo is None else tuple(
        UpoPage(
            page.reference_number,
            page.download_url,
            _optional_datetime(page.download_url_expiration_date, "upo downloadUrlExpirationDate"),
        )
        for page in model.upo.pages
    )
    return SessionStatus(
        reference_number=reference,
        code=model.status.code,
        description=model.status.description,
        details=_tuple_of_str(model.status.details),
        invoice_count=model.invoice_count,
        successful_count=model.successful_invoice_count,
        failed_count=model.failed_invoice_count,
        upo_pages=pages,
        created=parse_api_datetime(model.date_created, "session dateCreated"),
        updated=parse_api_datetime(model.date_updated, "session dateUpdated"),
        valid_until=_optional_datetime(model.valid_until, "session validUntil"),
    )


def session_summary_from(model: sdk.SessionsQueryResponseItem) -> SessionSummary:
    return SessionSummary(
        reference_number=required(model.reference_number, "session referenceNumber"),
        code=model.status.code,
        description=model.status.description,
        created=parse_api_datetime(model.date_created, "session dateCreated"),
        updated=parse_api_datetime(model.date_updated, "session dateUpdated"),
        valid_until=_optional_datetime(model.valid_until, "session validUntil"),
        total_count=model.total_invoice_count,
        successful_count=model.successful_invoice_count,
        failed_count=model.failed_invoice_count,
    )


def invoice_result_from(model: sdk.SessionInvoiceStatusResponse) -> InvoiceResult:
    extensions = model.status.extensions or {}
    return InvoiceResult(
        ordinal=required(model.ordinal_number, "invoice ordinalNumber"),
        reference_number=required(model.reference_number, "invoice referenceNumber"),
        invoice_hash=required(model.invoice_hash, "invoice invoiceHash"),
        invoicing_date=parse_api_datetime(model.invoicing_date, "invoice invoicingDate"),
        status_code=model.status.code,
        status_description=model.status.description,
        status_details=_tuple_of_str(model.status.details),
        extensions=MappingProxyType(
            {str(k): None if v is None else str(v) for k, v in extensions.items()}
        ),
        invoice_number=model.invoice_number,
        ksef_number=model.ksef_number,
        file_name=model.invoice_file_name,
        acquisition_date=_optional_datetime(model.acquisition_date, "invoice acquisitionDate"),
        permanent_storage_date=_optional_datetime(
            model.permanent_storage_date, "invoice permanentStorageDate"
        ),
        invoicing_mode=_enum_text(model.invoicing_mode),
    )


def part_upload_from(model: sdk.PartUploadRequest) -> PartUpload:
    headers = {str(k): str(v) for k, v in (model.headers or {}).items() if v is not None}
    return PartUpload(
        required(model.ordinal_number, "partUploadRequests ordinalNumber"),
        required(model.method, "partUploadRequests method").upper(),
        required(model.url, "partUploadRequests url"),
        MappingProxyType(headers),
    )
