"""What the pack and upo stages decide from what an invoice id already went through."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from pipeline.runtime import invoice_ledger
from pipeline.runtime.invoice_ledger import (
    OUTCOME,
    PACKED,
    REJECTED,
    InvoiceLedger,
    LedgerEntry,
    _decode,
    _encode,
    already_final,
    entries,
    replay_verdict,
)
from pipeline.runtime.settings import KafkaSettings
from topics.headers import HEADER_BATCH_ID

SHA, OTHER = "a" * 43 + "=", "b" * 43 + "="


FIRST, REPLAY = "s/0/10", "s/0/99"  # `.submitted` records: the first one, a replay


def packed(at: int, sha: str = SHA) -> LedgerEntry:
    return LedgerEntry(PACKED, sha, at, batch_id="b1", origin=FIRST)


def outcome(at: int, sha: str = SHA, number: str = "K1") -> LedgerEntry:
    return LedgerEntry(OUTCOME, sha, at, ksef_number=number, record=b'{"x":1}')


def rejected(at: int, sha: str = SHA, code: int = 450) -> LedgerEntry:
    return LedgerEntry(REJECTED, sha, at, code=code)


def test_a_new_invoice_is_packed() -> None:
    assert replay_verdict(None, None, SHA) == "pack"


def test_a_replay_of_an_accepted_invoice_gets_its_outcome_again_whenever_it_comes() -> None:
    assert replay_verdict(packed(10), outcome(20), SHA, REPLAY) == "outcome-again"
    assert replay_verdict(None, outcome(20), SHA, REPLAY) == "outcome-again"  # long ago


def test_a_redelivery_of_the_submission_already_answered_adds_no_record() -> None:
    """A crash, a rebalance or a second sealing brings the packed submission back (same
    `.submitted` origin): its outcome is on the topic once, and stays so. The same holds
    for a replay this worker already answered."""
    assert replay_verdict(packed(10), outcome(20), SHA, FIRST) == "on-its-way"
    assert replay_verdict(packed(10), outcome(20), SHA, REPLAY, REPLAY) == "on-its-way"
    assert replay_verdict(packed(10), outcome(20), SHA, "s/1/5", REPLAY) == "outcome-again"


def test_a_replay_while_its_batch_is_on_the_way_waits_for_that_batch() -> None:
    assert replay_verdict(packed(10), None, SHA) == "on-its-way"
    # refused once, packed again since: the new submission is on its way
    assert replay_verdict(packed(30), rejected(20), SHA) == "on-its-way"


def test_an_invoice_refused_after_packing_or_with_other_bytes_is_sent_again() -> None:
    assert replay_verdict(packed(10), rejected(20), SHA) == "pack"
    assert replay_verdict(packed(10, OTHER), None, SHA) == "pack"
    assert replay_verdict(packed(10, OTHER), outcome(20, OTHER), SHA) == "pack"


def test_upo_skips_an_outcome_or_rejection_already_on_the_topic() -> None:
    assert already_final(packed(10), outcome(20), SHA, ksef_number="K1")
    assert not already_final(packed(10), outcome(20), SHA, ksef_number="K2")
    assert not already_final(packed(10), None, SHA, ksef_number="K1")
    assert already_final(packed(10), rejected(20), SHA, code=450)
    assert not already_final(packed(10), rejected(20), SHA, code=440)
    # the rejection of an earlier submission does not settle this one
    assert not already_final(packed(30), rejected(20), SHA, code=450)
    assert not already_final(packed(10), rejected(20, OTHER), SHA, code=450)


def test_entries_of_each_topic_and_foreign_junk() -> None:
    manifest = orjson.dumps({"batch_id": "b9", "invoices": [
        {"invoice_id": "i1", "sha256": SHA,
         "origin": {"topic": "s", "partition": 0, "offset": 10}},
        {"invoice_id": "i2", "sha256": OTHER}]})
    assert [(i, e.batch_id, e.sha256, e.origin) for i, e in entries(PACKED, manifest, 5)] == [
        ("i1", "b9", SHA, FIRST), ("i2", "b9", OTHER, None)]
    out = orjson.dumps({"invoice_id": "i1", "sha256": SHA, "ksef_number": "K7"})
    ((inv, entry),) = entries(OUTCOME, out, 6)
    assert (inv, entry.ksef_number, entry.record) == ("i1", "K7", out)
    after = orjson.dumps({"invoice_id": "i1", "sha256": SHA, "stage": "upo", "code": 450})
    before = orjson.dumps({"invoice_id": "i1", "sha256": SHA, "stage": "validate", "code": 430})
    assert [e.code for _, e in entries(REJECTED, after, 7)] == [450]
    assert entries(REJECTED, before, 7) == []  # validation refusals precede any packing
    assert entries(OUTCOME, b"\xff junk", 1) == []
    assert entries(OUTCOME, b"[1, 2]", 1) == []


def test_entries_survive_the_store_encoding() -> None:
    for entry in (packed(1), outcome(2), rejected(3)):
        assert _decode(_encode(entry)) == entry


def test_a_duplicate_refusal_is_kept_apart_with_the_submission_it_answered() -> None:
    from pipeline.runtime.invoice_ledger import DUPLICATE_CHECK, REFUSED
    from pipeline.stages.s2_pack.duplicates import STAGE

    assert DUPLICATE_CHECK == STAGE  # the stage name the pack stage's refusals carry
    value = orjson.dumps({"invoice_id": "i1", "sha256": SHA, "stage": STAGE, "code": 440,
                          "origin": {"topic": "s", "partition": 0, "offset": 10}})
    ((invoice_id, entry),) = entries(REJECTED, value, 7)
    assert (invoice_id, entry.kind, entry.origin, entry.code) == ("i1", REFUSED, FIRST, 440)
    assert _decode(_encode(entry)) == entry


def _ledger(tmp_path: Path) -> InvoiceLedger:
    ledger = InvoiceLedger(KafkaSettings(), {PACKED: ("ksef.batches.packed", 3)}, tmp_path)
    ledger._db = {}  # the store's mapping interface, without RocksDB
    return ledger


def _packed_record(batch_id: str, invoice_id: str, offset: int,
                   headers: list[tuple[str, bytes]]) -> SimpleNamespace:
    value = orjson.dumps({"batch_id": batch_id, "invoices": [
        {"invoice_id": invoice_id, "sha256": SHA, "origin": None}]})
    return SimpleNamespace(topic="ksef.batches.packed", partition=0, offset=offset,
                           key=b"5260250274", value=value, timestamp=1_000, headers=headers)


def test_a_batch_published_here_is_not_parsed_again_when_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = _ledger(tmp_path)
    apply = ledger._applier(PACKED)
    ledger.note_batch("b-here", [("inv-1", packed(900))])
    parsed: list[bytes] = []
    monkeypatch.setattr(invoice_ledger, "entries",
                        lambda kind, value, at: parsed.append(value) or entries(kind, value, at))
    apply(_packed_record("b-here", "inv-1", 5, [(HEADER_BATCH_ID, b"b-here")]))
    assert parsed == []  # known already: its manifest stays unparsed
    assert ledger.packed("inv-1") == packed(900)
    assert ledger._db[b"o\0ksef.batches.packed\x000"] == b"6"  # read past all the same
    # another worker's batch, and one from before the header, are read as always
    apply(_packed_record("b-there", "inv-2", 6, [(HEADER_BATCH_ID, b"b-there")]))
    apply(_packed_record("b-old", "inv-3", 7, []))
    assert len(parsed) == 2
    assert ledger.packed("inv-2") is not None and ledger.packed("inv-3") is not None
