"""DeadlineBook: pending invoices by (issue date, mode), and the records it publishes."""

from __future__ import annotations

import dataclasses
import datetime as dt

import orjson

from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.ksef.deadlines import compute_deadline
from pipeline.ksef.modes import Mode
from pipeline.modes.audit import disagreements
from pipeline.modes.messages import to_message
from pipeline.modes.pending import DeadlineBook, Group, record_matches
from pipeline.modes.snapshot import build_mode_state
from tests.unit.modes.builders import announcement, at, deadline_record, sealed
from topics.codec import decode
from topics.records import Announcement, DeadlineRecord

NOW = at("2026-03-02 12:00")
# failure A covers Mon 2026-03-02; failure B covers Wed 2026-03-25 (announced later)
FAILURE_A = announcement("a", start="2026-03-02 08:00", end="2026-03-02 18:00")
FAILURE_B = announcement("b", start="2026-03-25 08:00", end="2026-03-25 18:00")


def history(*records: Announcement) -> AnnouncementHistory:
    return AnnouncementHistory(to_message(r) for r in records)


def book_with(invoices: list[tuple[str, str, str]], *records: Announcement) -> DeadlineBook:
    book = DeadlineBook(history(*records))
    for invoice_id, issued, mode in invoices:
        first = book.first_record(sealed(invoice_id, issued, mode), NOW)
        assert book.add(0, first, NOW) == []  # computed with the same history: no correction
    return book


def published(book: DeadlineBook, groups: list[Group]) -> dict[str, DeadlineRecord]:
    out = {}
    for group in groups:
        for invoice_id, value in group.records(group.deadline, "2026-03-02T12:00:00+01:00"):
            out[invoice_id] = decode(DeadlineRecord, value)
        group.published = group.deadline
    return out


def expected(record: DeadlineRecord, book: DeadlineBook) -> DeadlineRecord:
    deadline = compute_deadline(dt.date.fromisoformat(record.issue_date), Mode(record.mode),
                                book.history)
    return dataclasses.replace(record, **deadline.as_dict(), computed_by="tracker")


INVOICES = [("e1", "2026-03-02", "emergency"), ("e2", "2026-03-02", "emergency"),
            ("o1", "2026-03-05", "offline24"), ("b1", "2026-03-25", "emergency"),
            ("n1", "2026-03-06", "online")]


def test_records_agree_with_the_rules_core_and_decode_as_records() -> None:
    book = book_with(INVOICES, FAILURE_A)
    later = history(FAILURE_A, FAILURE_B)
    records = published(book, book.set_history(later))
    assert set(records) == {"b1"}  # B gives the emergency invoice of the 25th a date
    for record in records.values():
        assert record == expected(record, book)
        assert orjson.loads(orjson.dumps(record)) == orjson.loads(
            next(v for k, v in _group_of(book, record.invoice_id).records(
                _group_of(book, record.invoice_id).deadline, record.computed_at)
                if k == record.invoice_id))


def _group_of(book: DeadlineBook, invoice_id: str) -> Group:
    return book.partitions[0].where[invoice_id]


def test_moving_one_windows_end_recomputes_only_its_invoices() -> None:
    book = book_with(INVOICES, FAILURE_A, FAILURE_B)
    moved = dataclasses.replace(FAILURE_A, version=2, end="2026-03-05T18:00:00+01:00",
                                published="2026-03-05T18:05:00+01:00",
                                first_published=FAILURE_A.published)
    before = {i: _group_of(book, i).deadline for i, *_ in INVOICES}
    records = published(book, book.set_history(history(moved, FAILURE_B)))
    changed = {i for i, *_ in INVOICES if _group_of(book, i).deadline != before[i]}
    assert set(records) == changed == {"e1", "e2", "o1"}
    assert all(r == expected(r, book) for r in records.values())
    # the same history again changes nothing
    assert book.set_history(history(moved, FAILURE_B)) == []


def test_settled_invoices_are_tombstoned_and_stay_gone() -> None:
    book = book_with(INVOICES, FAILURE_A)
    (tomb,) = book.settle("e1", at("2026-03-02 13:00"), forward=False)
    assert tomb.invoice_id == "e1" and tomb.value is None
    assert book.settle("e1", at("2026-03-02 13:01"), forward=False) == []
    assert len(book) == len(INVOICES) - 1
    # a late first record of the same sealing must not bring it back
    late = book.first_record(sealed("e1", "2026-03-02", "emergency"), NOW)
    (again,) = book.add(0, late, NOW)
    assert again.value is None and len(book) == len(INVOICES) - 1
    # a replay sealed after the settlement is pending again
    replay = book.first_record(sealed("e1", "2026-03-02", "emergency",
                                      sealed_at="2026-03-02T14:00:00+01:00"), NOW)
    assert book.add(0, replay, NOW) == [] and len(book) == len(INVOICES)


def test_a_record_from_an_older_history_is_corrected() -> None:
    book = DeadlineBook(history(FAILURE_A))
    stale = deadline_record("x", "2026-03-02", "emergency", status="open", basis="old")
    (fix,) = book.add(3, stale, NOW)
    assert fix.value is not None
    fixed = decode(DeadlineRecord, fix.value)
    assert fixed == expected(dataclasses.replace(fixed, computed_by="sealed"), book)
    assert record_matches(fixed, _group_of_partition(book, 3, "x").deadline)


def _group_of_partition(book: DeadlineBook, partition: int, invoice_id: str) -> Group:
    return book.partitions[partition].where[invoice_id]


def test_load_rebuilds_a_partition_and_corrects_disagreeing_records() -> None:
    book = DeadlineBook(history(FAILURE_A))
    good = book.first_record(sealed("g", "2026-03-05", "offline24"), NOW)
    stale = deadline_record("s", "2026-03-02", "emergency", status="open", basis="old")
    changes = book.load(2, [good, stale], NOW)
    assert [c.invoice_id for c in changes] == ["s"]
    assert len(book) == 2 and book.dirty_groups() == []
    group = _group_of_partition(book, 2, "g")
    assert book.holds(group)
    book.load(2, [good], NOW)  # a reload replaces the partition
    assert len(book) == 1 and not book.holds(group)
    book.drop(2)
    assert len(book) == 0


def test_a_group_left_half_published_stays_dirty() -> None:
    book = book_with(INVOICES, FAILURE_A)
    (group,) = [g for g in book.set_history(history(FAILURE_A, FAILURE_B))
                if g.issue_date == dt.date(2026, 3, 25)]
    target = group.deadline
    moved = dataclasses.replace(FAILURE_B, version=2, end="2026-03-27T18:00:00+01:00")
    book.set_history(history(FAILURE_A, moved))  # arrives while `target` is being sent
    group.published = target
    assert group in book.dirty_groups()


def test_views_for_alerts_and_the_status_page() -> None:
    book = book_with(INVOICES, FAILURE_A, FAILURE_B)
    rows = book.by_deadline()
    assert sum(n for *_, n in rows) == len(INVOICES)
    assert [r[0] for r in rows if r[0]] == sorted(r[0] for r in rows if r[0])
    due = book.due_by_seller()["5265877635"]
    assert sum(due.values()) == len(INVOICES)  # every one has a date under A and B
    first = min(due)
    assert book.sample("5265877635", first) == sorted(
        i for i, *_ in INVOICES if _group_of(book, i).deadline.due == first)


def test_audit_names_every_record_the_rules_core_disagrees_with() -> None:
    book = book_with(INVOICES, FAILURE_A)
    state = build_mode_state([FAILURE_A], NOW)
    good = book.first_record(sealed("ok", "2026-03-05", "offline24"), NOW)
    wrong = dataclasses.replace(good, invoice_id="bad", deadline="2026-03-31")
    assert disagreements([good], state) == []
    (problem,) = disagreements([good, wrong], state)
    assert problem.startswith("bad: deadline '2026-03-31' != ")


def test_settling_an_invoice_held_elsewhere_forwards_its_tombstone() -> None:
    owner = book_with(INVOICES, FAILURE_A)
    other = DeadlineBook(history(FAILURE_A))
    (forwarded,) = other.settle("o1", at("2026-03-02 13:00"), forward=True)
    assert forwarded.value is None and other.settle("o1", NOW, forward=False) == []
    owner.forget(0, forwarded.invoice_id, at("2026-03-02 13:00:01"))
    assert "o1" not in owner.partitions[0].where and len(owner) == len(INVOICES) - 1
    # the first record arriving after the forwarded tombstone stays out
    late = owner.first_record(sealed("o1", "2026-03-05", "offline24"), NOW)
    assert [c.value for c in owner.add(0, late, NOW)] == [None]
