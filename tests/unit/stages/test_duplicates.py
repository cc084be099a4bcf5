"""The duplicate check's decisions without Kafka (the pack stage owns the numbers)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.ksef.numbers import sha256_b64
from pipeline.stages.s1_validate_seal.submission import (
    AttachmentPolicy,
    CheckedInvoice,
    Submission,
    check_submission,
)
from pipeline.stages.s2_pack.duplicates import (
    dedupe,
    duplicate_key,
    held_keys,
    held_value,
    release_for,
)
from topics.records import KafkaRef, Rejection

TODAY = dt.date(2026, 11, 20)
CHECKER = InvoiceChecker()
SELLER, OTHER = seller_nips(2, seed=7)


def sub(value: bytes | None, key: bytes | None = b"inv-1") -> Submission:
    return Submission(key, value, {}, KafkaRef("ksef.invoices.submitted", 3, 42),
                      "2026-11-20T10:00:00+00:00")


def invoice(number: str = "FV/1", seed: int = 0) -> bytes:
    return make_invoice(seller_nip=SELLER, number=number, issue_date=TODAY, seed=seed)


def _validated(invoice_id: str, xml: bytes, correction: str | None = None) -> CheckedInvoice:
    out = check_submission(sub(xml, key=invoice_id.encode()), CHECKER, TODAY,
                           AttachmentPolicy())
    assert isinstance(out, CheckedInvoice)
    return replace(out, technical_correction_of=correction)


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


def test_a_technical_correction_passes_and_takes_a_number_its_original_gave_back() -> None:
    first = _validated("a", invoice(seed=1))
    stored, _ = dedupe(first, None)
    fix = _validated("a-fix", invoice(seed=2), correction=first.sha256)
    # the original rejected by KSeF: its release freed the number, the correction takes it
    new, rej = dedupe(fix, None)
    assert rej is None and new is not None and fix.sha256 in new
    # the original still holds it (accepted, or not settled yet): the correction passes
    # (KSeF decides) and the number stays with the original
    assert dedupe(fix, stored) == (None, None)


def test_a_refused_correction_of_an_accepted_invoice_frees_no_number() -> None:
    """Found by running it: KSeF refused (21167) a correction of an accepted invoice, its
    rejection released the number, and a copy of the accepted invoice passed the check."""
    first = _validated("a", invoice(seed=1))
    stored, _ = dedupe(first, None)
    assert stored is not None
    fix = _validated("a-fix", invoice(seed=2), correction=first.sha256)
    assert dedupe(fix, stored) == (None, None)
    refused = Rejection(invoice_id=fix.invoice_id, stage="submit", code=400,
                        reason="correction-refused", message="21167",
                        rejected_at="2026-11-20T10:00:00+00:00", seller_nip=fix.seller_nip,
                        invoice_number=fix.invoice_number, sha256=fix.sha256)
    release = release_for(refused)
    assert release is not None
    # the pack stage frees a key only where the table holds the released invoice
    assert held_value(release.invoice_id, release.sha256) != stored
    _, copy = dedupe(_validated("a-copy", invoice(seed=1)), stored)
    assert copy is not None and copy.reason == "duplicate"


def _rejection(stage: str, reason: str, **fields: object) -> Rejection:
    base: dict[str, object] = {"seller_nip": SELLER, "invoice_number": "FV/1",
                               "sha256": sha256_b64(b"x")}
    base.update(fields)
    return Rejection(invoice_id="a", stage=stage, code=450, reason=reason, message="m",
                     rejected_at="2026-11-20T10:00:00+00:00", **base)  # type: ignore[arg-type]


def test_a_rejection_after_the_check_releases_every_key_the_invoice_may_hold() -> None:
    rel = release_for(_rejection("upo", "semantic"))
    assert rel is not None
    assert (rel.invoice_id, rel.seller_nip, rel.invoice_number, rel.sha256) == (
        "a", SELLER, "FV/1", sha256_b64(b"x"))
    first = _validated("a", invoice(seed=1))
    assert duplicate_key(first) in held_keys(rel)
    for stage, reason in [("submit", "no-ksef-token"), ("submit", "session-445"),
                          ("pack", "decryption"), ("pack", "too-large")]:
        assert release_for(_rejection(stage, reason)) is not None, (stage, reason)


@pytest.mark.parametrize(("stage", "reason", "fields"), [
    ("validate", "schema", {}),            # never held a key
    ("seal", "unknown", {}),               # sealed before the check: never held one
    ("dedupe", "duplicate", {}),           # the holder is another invoice
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
