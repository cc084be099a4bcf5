"""KSeF's uniqueness rule as plain functions: (seller NIP, RodzajFaktury, P_2) is unique.

The pack stage owns the table of numbers in use for the seller partitions it holds (the
sealed topic is keyed by seller NIP, so every number of a seller meets in one partition,
across restarts through the table's changelog). An invoice refused after that check is
not in KSeF, so its number is free again: its rejection becomes a release.
"""

from __future__ import annotations

from typing import Protocol

from pipeline.clock import iso
from pipeline.ksef.fa3 import INVOICE_KINDS, REASONS
from topics.records import DedupeRelease, KafkaRef, Rejection
from topics.rejections import build_rejection

STAGE = "dedupe"
# Rejections from these stages come before the check: their invoices never held a number.
BEFORE_THE_CHECK = frozenset({"validate", "seal", STAGE})


class Numbered(Protocol):
    """What the check reads of a sealed invoice."""

    @property
    def invoice_id(self) -> str: ...
    @property
    def seller_nip(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def invoice_number(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def received_at(self) -> str: ...
    @property
    def origin(self) -> KafkaRef: ...
    @property
    def technical_correction_of(self) -> str | None: ...


def uniqueness_key(seller_nip: str, kind: str, invoice_number: str) -> str:
    """KSeF's uniqueness key as the table stores it: seller NIP, RodzajFaktury, P_2."""
    return f"{seller_nip}|{kind}|{invoice_number}"


def duplicate_key(inv: Numbered) -> str:
    return uniqueness_key(inv.seller_nip, inv.kind, inv.invoice_number)


def held_keys(release: DedupeRelease) -> list[str]:
    """Every uniqueness key the released invoice may hold (one per RodzajFaktury)."""
    return [uniqueness_key(release.seller_nip, kind, release.invoice_number)
            for kind in INVOICE_KINDS]


def held_value(invoice_id: str, sha256: str) -> str:
    """What the table stores for the invoice holding a key."""
    return f"{invoice_id} {sha256}"


def release_for(rej: Rejection) -> DedupeRelease | None:
    """The release a rejection asks for, or None.

    An invoice refused after the check (no KSeF credentials, KSeF's 450, a failed
    session) is not in KSeF, so its number is free again: a corrected invoice under the
    same number must not be refused as its duplicate. Rejections from before the check
    never held a key, and KSeF's 440 says another invoice does hold the number in KSeF.
    """
    if rej.stage in BEFORE_THE_CHECK or rej.reason == "duplicate":
        return None
    if not (rej.seller_nip and rej.invoice_number and rej.sha256):
        return None
    return DedupeRelease(
        invoice_id=rej.invoice_id, seller_nip=rej.seller_nip,
        invoice_number=rej.invoice_number, sha256=rej.sha256, stage=rej.stage,
        reason=rej.reason, requested_at=iso())


def dedupe(inv: Numbered, seen: str | None) -> tuple[str | None, Rejection | None]:
    """Given what the table holds for the invoice's key, the value to store and a rejection.

    The stored value is "invoice_id sha256". The same id with the same bytes is a replay
    (passes again, idempotent downstream), and so is a technical correction naming the
    holder's hash; anything else under the same key is a duplicate.
    """
    mine = held_value(inv.invoice_id, inv.sha256)
    if seen is None:
        return mine, None
    if seen == mine:
        return None, None
    original_id, _, original_hash = seen.partition(" ")
    if inv.technical_correction_of and inv.technical_correction_of == original_hash:
        # A technical correction of the invoice holding the number passes, and the
        # holder keeps it: KSeF takes a correction only of an invoice it rejected (whose
        # release then frees the number), and refuses one of an accepted or unsettled
        # invoice; that refusal must not give the holder's number away.
        return None, None
    if original_id == inv.invoice_id:
        why = "was already submitted with different content under the same invoice id"
    else:
        why = f"was already submitted as invoice id {original_id}"
    message = (f"invoice {inv.invoice_number} ({inv.kind}) of seller {inv.seller_nip} {why}; "
               "KSeF keeps (seller NIP, RodzajFaktury, P_2) unique for 10 years")
    rej = build_rejection(
        invoice_id=inv.invoice_id, stage=STAGE, code=REASONS["duplicate"][0],
        reason="duplicate", message=message, rejected_at=iso(),
        details={"original_invoice_id": original_id, "original_sha256": original_hash},
        seller_nip=inv.seller_nip, invoice_number=inv.invoice_number, sha256=inv.sha256,
        received_at=inv.received_at, origin=inv.origin,
    )
    return None, rej
