"""Pending invoices grouped by (issue date, mode), and which deadline records to publish.

A deadline depends only on the invoice's issue date, its mode and the announcement
history, so the book keeps invoices in groups sharing (issue date, mode): an
announcement change costs one rules-core computation per group, and only groups whose
deadline (date, status or basis) changed produce records, one per member.

Each group remembers the deadline it last published for all its members (`published`)
beside the one the current history gives (`deadline`); a group is dirty while the two
differ. The publisher sends a dirty group's records in one go and only then marks it
clean, so a history that changes mid-way simply leaves the group dirty again: no member
is ever left on a deadline the book no longer believes.

Per-invoice fields are kept pre-encoded as a JSON fragment, so building a million
records is string concatenation, not a million dataclasses.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.ksef.deadlines import Deadline, Status, compute_deadline
from pipeline.ksef.modes import Mode
from topics.records import DeadlineRecord, SealedInvoice

GroupKey = tuple[dt.date, Mode]
SEALED = "sealed"
TRACKER = "tracker"
DONE_CAPACITY = 500_000


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def parse_moment(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _member_fragment(invoice_id: str, seller_nip: str, invoice_number: str | None,
                     sealed_at: str | None) -> bytes:
    return orjson.dumps({"invoice_id": invoice_id, "seller_nip": seller_nip,
                         "invoice_number": invoice_number, "sealed_at": sealed_at})[1:-1]


def first_record(sealed: SealedInvoice, deadline: Deadline, now: dt.datetime
                 ) -> DeadlineRecord:
    """The first `ksef.deadlines` record of a sealed invoice (`computed_by: sealed`): the
    seal stage publishes it with the deadline it stamped, so tracking needs no second
    read of the sealed topic."""
    return DeadlineRecord(
        invoice_id=sealed.invoice_id, seller_nip=sealed.seller_nip,
        issue_date=sealed.issue_date, status=deadline.status.value,
        mode=deadline.mode.value, basis=deadline.basis, computed_at=_iso(now),
        deadline=None if deadline.due is None else deadline.due.isoformat(),
        invoice_number=sealed.invoice_number, sealed_at=sealed.sealed_at,
        computed_by=SEALED)


def record_matches(record: DeadlineRecord, deadline: Deadline) -> bool:
    return (record.status == deadline.status.value and record.mode == deadline.mode.value
            and record.deadline == (None if deadline.due is None else deadline.due.isoformat())
            and record.basis == deadline.basis)


class Group:
    """Pending invoices sharing an issue date and a mode."""

    __slots__ = ("deadline", "issue_date", "members", "mode", "partition", "published",
                 "sellers")

    def __init__(self, partition: int, issue_date: dt.date, mode: Mode,
                 deadline: Deadline) -> None:
        self.partition = partition
        self.issue_date = issue_date
        self.mode = mode
        self.deadline = deadline
        self.published: Deadline | None = deadline
        self.members: dict[str, tuple[str, bytes]] = {}  # id -> (seller, JSON fragment)
        self.sellers: Counter[str] = Counter()

    @property
    def dirty(self) -> bool:
        return self.published != self.deadline

    def shared_fragment(self, deadline: Deadline, computed_at: str) -> bytes:
        return orjson.dumps({
            "issue_date": self.issue_date.isoformat(), **deadline.as_dict(),
            "computed_at": computed_at, "computed_by": TRACKER})[1:-1]

    def records(self, deadline: Deadline, computed_at: str) -> Iterator[tuple[str, bytes]]:
        """(invoice id, record JSON) for every current member, all with `deadline`.

        Iterates over a snapshot and skips members removed meanwhile, so a caller may
        await between items.
        """
        shared = self.shared_fragment(deadline, computed_at)
        for invoice_id, (_, fragment) in list(self.members.items()):
            if invoice_id in self.members:
                yield invoice_id, b"{" + fragment + b"," + shared + b"}"


class PendingPartition:
    """The pending invoices of one `ksef.deadlines` partition."""

    __slots__ = ("groups", "where")

    def __init__(self) -> None:
        self.groups: dict[GroupKey, Group] = {}
        self.where: dict[str, Group] = {}

    def __len__(self) -> int:
        return len(self.where)


class DoneLog:
    """Invoices recently settled (accepted or rejected) and when: a deadline record for
    one of them sealed before that moment is stale and must not bring it back."""

    def __init__(self, capacity: int = DONE_CAPACITY) -> None:
        self.capacity = capacity
        self._at: OrderedDict[str, dt.datetime] = OrderedDict()

    def add(self, invoice_id: str, at: dt.datetime) -> None:
        self._at[invoice_id] = at
        self._at.move_to_end(invoice_id)
        while len(self._at) > self.capacity:
            self._at.popitem(last=False)

    def add_if_absent(self, invoice_id: str, at: dt.datetime) -> None:
        if invoice_id not in self._at:
            self.add(invoice_id, at)

    def settles(self, invoice_id: str, sealed_at: dt.datetime | None) -> bool:
        done = self._at.get(invoice_id)
        return done is not None and (sealed_at is None or sealed_at <= done)


@dataclass(frozen=True)
class Change:
    """One record to publish: key = invoice id, value None = tombstone."""

    invoice_id: str
    value: bytes | None


class DeadlineBook:
    """Every pending invoice of the partitions this worker owns, by partition and group."""

    def __init__(self, history: AnnouncementHistory | None = None,
                 done_capacity: int = DONE_CAPACITY) -> None:
        self.history = history or AnnouncementHistory()
        self.partitions: dict[int, PendingPartition] = {}
        self.done = DoneLog(done_capacity)
        self._memo: dict[GroupKey, Deadline] = {}

    # ---- rules ----
    def deadline(self, issue_date: dt.date, mode: Mode) -> Deadline:
        key = (issue_date, mode)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = compute_deadline(issue_date, mode, self.history)
        return found

    def first_record(self, sealed: SealedInvoice, now: dt.datetime) -> DeadlineRecord:
        """The record announcing a newly sealed invoice (it reaches its partition's owner
        through `ksef.deadlines`, keyed by invoice id)."""
        deadline = self.deadline(dt.date.fromisoformat(sealed.issue_date), Mode(sealed.mode))
        return first_record(sealed, deadline, now)

    # ---- membership ----
    def partition(self, number: int) -> PendingPartition:
        found = self.partitions.get(number)
        if found is None:
            found = self.partitions[number] = PendingPartition()
        return found

    def _group(self, partition: int, issue_date: dt.date, mode: Mode) -> Group:
        part = self.partition(partition)
        group = part.groups.get((issue_date, mode))
        if group is None:
            group = part.groups[(issue_date, mode)] = Group(
                partition, issue_date, mode, self.deadline(issue_date, mode))
        return group

    def holds(self, group: Group) -> bool:
        """False once the group's partition was dropped (or the group emptied)."""
        part = self.partitions.get(group.partition)
        return part is not None and part.groups.get((group.issue_date, group.mode)) is group

    def _insert(self, partition: int, record: DeadlineRecord) -> Group:
        part = self.partition(partition)
        self._discard(part, record.invoice_id)
        group = self._group(partition, dt.date.fromisoformat(record.issue_date),
                            Mode(record.mode))
        seller = sys.intern(record.seller_nip)
        group.members[record.invoice_id] = (seller, _member_fragment(
            record.invoice_id, seller, record.invoice_number, record.sealed_at))
        group.sellers[seller] += 1
        part.where[record.invoice_id] = group
        return group

    def _discard(self, part: PendingPartition, invoice_id: str) -> bool:
        group = part.where.pop(invoice_id, None)
        if group is None:
            return False
        seller, _ = group.members.pop(invoice_id)
        group.sellers[seller] -= 1
        if not group.sellers[seller]:
            del group.sellers[seller]
        if not group.members:
            del part.groups[(group.issue_date, group.mode)]
        return True

    def add(self, partition: int, record: DeadlineRecord, now: dt.datetime) -> list[Change]:
        """A newly sealed invoice; returns a correction if its record is not what the
        current history says, or a tombstone if the invoice was settled meanwhile."""
        if self.done.settles(record.invoice_id, parse_moment(record.sealed_at)):
            return [Change(record.invoice_id, None)]
        group = self._insert(partition, record)
        if record_matches(record, group.deadline):
            return []
        return [Change(record.invoice_id, self._one(group, record.invoice_id, now))]

    def _one(self, group: Group, invoice_id: str, now: dt.datetime) -> bytes:
        _, fragment = group.members[invoice_id]
        return b"{" + fragment + b"," + group.shared_fragment(group.deadline, _iso(now)) + b"}"

    def settle(self, invoice_id: str, at: dt.datetime, *, forward: bool) -> list[Change]:
        """The invoice is in KSeF (or rejected): forget it and tombstone its record.

        Outcomes and rejections need not be partitioned like `ksef.deadlines`, so the
        invoice is looked up in every partition held here. Not found and `forward`
        (another worker may hold it): the tombstone is published anyway and reaches the
        owner through `ksef.deadlines`, which applies it with `forget`.
        """
        self.done.add(invoice_id, at)
        for part in self.partitions.values():
            if self._discard(part, invoice_id):
                return [Change(invoice_id, None)]
        return [Change(invoice_id, None)] if forward else []

    def pending_since(self, invoice_id: str) -> dt.datetime | None:
        """When a pending invoice held here was sealed (None: not held, or unknown)."""
        for part in self.partitions.values():
            group = part.where.get(invoice_id)
            if group is not None:
                _, fragment = group.members[invoice_id]
                sealed_at = orjson.loads(b"{" + fragment + b"}").get("sealed_at")
                return parse_moment(sealed_at) if sealed_at else None
        return None

    def forget(self, partition: int, invoice_id: str, now: dt.datetime) -> None:
        """A tombstone read back from `ksef.deadlines` (our own, or forwarded)."""
        self.done.add_if_absent(invoice_id, now)
        part = self.partitions.get(partition)
        if part is not None:
            self._discard(part, invoice_id)

    def load(self, partition: int, records: Iterable[DeadlineRecord],
             now: dt.datetime) -> list[Change]:
        """Rebuild a partition from its compacted records; returns the corrections that
        bring every record in line with the current history."""
        self.partitions[partition] = PendingPartition()
        changes = []
        for record in records:
            group = self._insert(partition, record)
            if not record_matches(record, group.deadline):
                changes.append(Change(record.invoice_id,
                                      self._one(group, record.invoice_id, now)))
        return changes

    def drop(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    # ---- recompute ----
    def set_history(self, history: AnnouncementHistory) -> list[Group]:
        """Recompute every group under `history`; returns the dirty groups."""
        self.history = history
        self._memo = {}
        dirty = []
        for part in self.partitions.values():
            for group in part.groups.values():
                group.deadline = self.deadline(group.issue_date, group.mode)
                if group.dirty:
                    dirty.append(group)
        return dirty

    def dirty_groups(self) -> list[Group]:
        return [g for part in self.partitions.values() for g in part.groups.values() if g.dirty]

    # ---- views ----
    def __len__(self) -> int:
        return sum(len(p) for p in self.partitions.values())

    def groups(self) -> Iterator[Group]:
        for part in self.partitions.values():
            yield from part.groups.values()

    def by_deadline(self) -> list[tuple[str, str, str, int]]:
        """(deadline or '', status, mode, count) totals, earliest deadline first."""
        totals: Counter[tuple[str, str, str]] = Counter()
        for group in self.groups():
            d = group.deadline
            totals[(d.due.isoformat() if d.due else "", d.status.value, d.mode.value)] += len(
                group.members)
        return sorted(((due, status, mode, n) for (due, status, mode), n in totals.items()),
                      key=lambda row: (row[0] == "", row[0], row[1], row[2]))

    def due_by_seller(self) -> dict[str, Counter[dt.date]]:
        """seller -> {deadline: pending count} over groups with a finite deadline."""
        out: dict[str, Counter[dt.date]] = {}
        for group in self.groups():
            due = group.deadline.due
            if group.deadline.status is not Status.DUE or due is None:
                continue
            for seller, count in group.sellers.items():
                out.setdefault(seller, Counter())[due] += count
        return out

    def sample(self, seller: str, due: dt.date, limit: int = 5) -> list[str]:
        """A few invoice ids of `seller` due on `due` (for alerts)."""
        found: list[str] = []
        for group in self.groups():
            if group.deadline.due != due or seller not in group.sellers:
                continue
            found += [i for i, (s, _) in group.members.items() if s == seller][: limit - len(found)]
            if len(found) >= limit:
                break
        return sorted(found)
