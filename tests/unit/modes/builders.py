"""Records for the mode-state tests."""

from __future__ import annotations

import datetime as dt

from pipeline.modes.messages import LATARNIA, iso
from topics.records import Announcement, DeadlineRecord, KafkaRef, SealedInvoice

WARSAW = dt.timezone(dt.timedelta(hours=1))  # winter offset, fixed for readable times


def at(text: str) -> dt.datetime:
    """'2026-03-02 08:00' as a Warsaw winter time."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=WARSAW)


def announcement(msg_id: str, category: str = "FAILURE", *, start: str, end: str | None = None,
                 published: str | None = None, version: int = 1, source: str = LATARNIA,
                 msg_type: str | None = None) -> Announcement:
    kind = msg_type or ("MAINTENANCE_ANNOUNCEMENT" if category == "MAINTENANCE"
                        else "FAILURE_START")
    return Announcement(
        id=msg_id, event_id=msg_id, category=category, type=kind, start=iso(at(start)),
        version=version, published=iso(at(published or start)), source=source,
        end=None if end is None else iso(at(end)))


def sealed(invoice_id: str, issue_date: str, mode: str, *, seller: str = "5265877635",
           sealed_at: str = "2026-03-02T10:00:00+01:00") -> SealedInvoice:
    return SealedInvoice(
        invoice_id=invoice_id, seller_nip=seller, invoice_number=f"FV/{invoice_id}",
        issue_date=issue_date, kind="VAT", size=100, sha256="aGFzaA==", has_attachments=False,
        mode=mode, key_id="k1", qr_code_1="https://qr",
        received_at=sealed_at, sealed_at=sealed_at, origin=KafkaRef("sealed", 0, 1))


def deadline_record(invoice_id: str, issue_date: str, mode: str, **changes: object
                    ) -> DeadlineRecord:
    base = dict(invoice_id=invoice_id, seller_nip="5265877635", issue_date=issue_date,
                status="due", mode=mode, basis="?", computed_at="2026-03-02T10:00:00+01:00",
                deadline=None, invoice_number=f"FV/{invoice_id}",
                sealed_at="2026-03-02T10:00:00+01:00", computed_by="sealed")
    base.update(changes)
    return DeadlineRecord(**base)  # type: ignore[arg-type]
