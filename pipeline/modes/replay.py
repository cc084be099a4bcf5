"""Which rejected invoices to send through the pipeline again, and their original bytes.

A rejection names where its invoice came from (`origin`): the `ksef.invoices.submitted`
record for the validate stage (the exact bytes and `ksef-*` headers as issued), or the
`ksef.invoices.sealed` record for later stages (opened with the keyring). The invoice
goes back on `ksef.invoices.submitted` under its own id, so the pipeline treats it as
an exact replay. Invoices accepted since their rejection are never replayed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.ksef.keyring import Keyring
from pipeline.modes.pending import parse_moment
from pipeline.runtime.topic_reads import RawRecord
from topics.headers import (
    HEADER_ATTACHMENTS,
    HEADER_CORRECTION,
    HEADER_SELLER,
    HEADER_SOURCE,
)
from topics.records import Rejection
from topics.sealed import open_sealed


@dataclass
class ReplayPlan:
    chosen: list[Rejection] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def _matches(rejection: Rejection, reasons: set[str] | None) -> bool:
    return reasons is None or rejection.reason in reasons or str(rejection.code) in reasons


def plan(rejections: Iterable[Rejection], accepted: set[str], reasons: set[str] | None,
         since: dt.datetime | None) -> ReplayPlan:
    """The latest rejection of each invoice matching the filters, oldest first."""
    latest: dict[str, Rejection] = {}
    for rejection in rejections:
        seen = latest.get(rejection.invoice_id)
        if seen is None or rejection.rejected_at >= seen.rejected_at:
            latest[rejection.invoice_id] = rejection
    result = ReplayPlan()
    for rejection in sorted(latest.values(), key=lambda r: (r.rejected_at, r.invoice_id)):
        at = parse_moment(rejection.rejected_at)
        if not _matches(rejection, reasons) or (since is not None and at is not None
                                                and at < since):
            continue
        if rejection.invoice_id in accepted:
            result.skipped["accepted since"] += 1
        elif rejection.origin is None:
            result.skipped["no origin record"] += 1
        else:
            result.chosen.append(rejection)
    return result


@dataclass(frozen=True)
class Replayable:
    """An invoice ready for `InvoiceProducer.send` (never logged: it holds the XML)."""

    invoice_id: str
    xml: bytes
    seller_nip: str | None = None
    source: str | None = None
    attachments: bool = False
    technical_correction_of: str | None = None

    def __repr__(self) -> str:
        return f"Replayable({self.invoice_id!r}, {len(self.xml)} bytes)"


def from_submitted(rejection: Rejection, raw: RawRecord) -> Replayable:
    if raw.value is None:
        raise LookupError(f"{rejection.invoice_id}: the submitted record is empty")

    def header(name: str) -> str | None:
        value = raw.headers.get(name)
        return None if value is None else value.decode("utf-8", "replace")

    return Replayable(rejection.invoice_id, raw.value, header(HEADER_SELLER),
                      header(HEADER_SOURCE), header(HEADER_ATTACHMENTS) == "1",
                      header(HEADER_CORRECTION))


def from_sealed(rejection: Rejection, raw: RawRecord, keyring: Keyring | None) -> Replayable:
    if keyring is None:
        raise LookupError(f"{rejection.invoice_id}: sealed after validation; opening it needs "
                          "the keyring (--keyring or KSEF_KEYRING_FILE)")
    if raw.value is None:
        raise LookupError(f"{rejection.invoice_id}: the sealed record is empty")
    opened = open_sealed(raw.value, keyring)
    sealed, xml = opened.meta, opened.invoice()
    return Replayable(sealed.invoice_id, xml, sealed.seller_nip, sealed.source,
                      sealed.has_attachments, sealed.technical_correction_of)
