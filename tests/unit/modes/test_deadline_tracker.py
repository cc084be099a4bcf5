"""The deadline tracker's record handling, without a broker: a partition is loaded before
its records count, an outcome tombstones its invoice, a tombstone read back forgets it,
records already in the load are not applied twice, a revoked partition is dropped, and
an announcement's recomputed deadlines go out through the loop's producer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest

import pipeline.modes.deadline_tracker as module
from pipeline.metrics import Metrics
from pipeline.modes.deadline_tracker import DeadlineTracker
from pipeline.modes.snapshot import build_mode_state
from pipeline.runtime.settings import DeadlineSettings, KafkaSettings
from pipeline.runtime.topic_reads import Snapshot
from tests.unit.modes.builders import announcement, at, sealed
from topics import CatalogSettings, topic_name
from topics.catalog import DEADLINES, OUTCOMES, REJECTED
from topics.codec import decode, encode
from topics.records import DeadlineRecord, InvoiceOutcome, Rejection

CATALOG = CatalogSettings.from_env()
DEADLINES_NAME = topic_name(DEADLINES, CATALOG)
OUTCOMES_NAME = topic_name(OUTCOMES, CATALOG)
REJECTED_NAME = topic_name(REJECTED, CATALOG)
NOW = at("2026-03-02 12:00")


@dataclass
class Msg:
    """A librdkafka message as the tracker reads it."""

    topic_: str
    partition_: int
    offset_: int
    key_: bytes | None
    value_: bytes | None

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_


class Output:
    """The loop's output: what was produced, in order."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None]] = []

    def produce(self, spec: Any, key: bytes, value: bytes | None, refused: Any = None) -> None:
        self.records.append((spec.name, key, value))


class Follower:
    state = None

    async def wait_ready(self) -> None:
        return None


def tracker(partitions: int = 2) -> DeadlineTracker:
    return DeadlineTracker(DeadlineSettings(), KafkaSettings.from_env(), CATALOG, Metrics(),
                           Follower(), partitions)  # type: ignore[arg-type]


def first(invoice_id: str, issued: str = "2026-03-02", mode: str = "online") -> bytes:
    book = tracker().book
    return encode(book.first_record(sealed(invoice_id, issued, mode), NOW))


def outcome(invoice_id: str) -> bytes:
    return encode(InvoiceOutcome(
        invoice_id=invoice_id, seller_nip="5260250274", invoice_number="FV/1",
        ksef_number="5260250274-20260302-0100000000AA-00", acquisition_date="2026-03-02",
        invoicing_mode="online", session_ref="s-1", sha256="x" * 44,
        recorded_at="2026-03-02T12:05:00+00:00"))


def rejection(invoice_id: str) -> bytes:
    return encode(Rejection(invoice_id=invoice_id, stage="upo", code=450, reason="ksef-450",
                            message="refused", rejected_at="2026-03-02T12:05:00+00:00"))


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> dict[int, Snapshot]:
    """What `read_latest` finds per partition of `ksef.deadlines` (empty by default)."""
    found: dict[int, Snapshot] = {}

    def read_latest(_kafka: Any, topic: str, partitions: list[int]) -> Snapshot:
        assert topic == DEADLINES_NAME
        (partition,) = partitions
        return found.get(partition, Snapshot({}, {partition: 0}))

    monkeypatch.setattr(module, "read_latest", read_latest)
    return found


async def test_a_partition_is_loaded_before_its_records_and_an_outcome_tombstones(
        loads: dict[int, Snapshot]) -> None:
    loads[0] = Snapshot({b"old": first("old")}, {0: 5})
    t, out = tracker(), Output()
    await t.rebalanced([(DEADLINES_NAME, 0), (OUTCOMES_NAME, 0)], [], out)
    assert t.loaded == {0: 5} and len(t.book) == 1
    t.handle([Msg(DEADLINES_NAME, 0, 4, b"old", first("old")),  # in the load already
              Msg(DEADLINES_NAME, 0, 5, b"new", first("new"))], out)
    assert len(t.book) == 2 and out.records == []  # same history: nothing to correct
    t.handle([Msg(OUTCOMES_NAME, 0, 0, b"new", outcome("new"))], out)
    assert out.records == [("ksef.deadlines", b"new", None)]
    assert t.book.pending_since("new") is None and len(t.book) == 1
    # the tombstone read back: already applied, nothing more
    t.handle([Msg(DEADLINES_NAME, 0, 6, b"new", None)], out)
    assert len(out.records) == 1 and len(t.book) == 1


async def test_records_of_partitions_not_held_are_ignored_and_settles_are_forwarded(
        loads: dict[int, Snapshot]) -> None:
    t, out = tracker(partitions=2), Output()
    await t.rebalanced([(DEADLINES_NAME, 0)], [], out)
    t.handle([Msg(DEADLINES_NAME, 1, 0, b"theirs", first("theirs"))], out)
    assert len(t.book) == 0
    # held elsewhere maybe (partition 1 is another worker's): the tombstone goes anyway
    t.handle([Msg(REJECTED_NAME, 0, 0, b"theirs", rejection("theirs"))], out)
    assert out.records == [("ksef.deadlines", b"theirs", None)]


async def test_a_worker_holding_every_partition_does_not_forward(
        loads: dict[int, Snapshot]) -> None:
    t, out = tracker(partitions=1), Output()
    await t.rebalanced([(DEADLINES_NAME, 0)], [], out)
    t.handle([Msg(OUTCOMES_NAME, 0, 0, b"unknown", outcome("unknown"))], out)
    assert out.records == []


async def test_a_revoked_partition_is_dropped_and_reloaded_when_it_comes_back(
        loads: dict[int, Snapshot]) -> None:
    t, out = tracker(), Output()
    await t.rebalanced([(DEADLINES_NAME, 0)], [], out)
    t.handle([Msg(DEADLINES_NAME, 0, 0, b"a", first("a"))], out)
    assert len(t.book) == 1
    await t.rebalanced([], [(DEADLINES_NAME, 0)], out)
    assert t.loaded == {} and len(t.book) == 0
    t.handle([Msg(DEADLINES_NAME, 0, 1, b"b", first("b"))], out)
    assert len(t.book) == 0  # not ours any more
    loads[0] = Snapshot({b"a": first("a"), b"b": first("b")}, {0: 2})
    await t.rebalanced([(DEADLINES_NAME, 0)], [], out)
    assert len(t.book) == 2 and t.loaded == {0: 2}


async def test_junk_on_any_topic_is_skipped(loads: dict[int, Snapshot]) -> None:
    t, out = tracker(), Output()
    await t.rebalanced([(DEADLINES_NAME, 0)], [], out)
    t.handle([Msg(DEADLINES_NAME, 0, 0, b"x", b'{"computed_by":"sealed", "no": 1}'),
              Msg(OUTCOMES_NAME, 0, 0, b"x", b"not json"),
              Msg(REJECTED_NAME, 0, 0, b"x", None)], out)
    assert len(t.book) == 0 and out.records == []


async def test_an_announcement_recomputes_and_the_records_go_out_on_the_next_turn(
        loads: dict[int, Snapshot], monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[bool] = []

    async def check() -> None:
        checked.append(True)

    t, out = tracker(), Output()
    monkeypatch.setattr(t, "check_deadlines", check)
    await t.rebalanced([(DEADLINES_NAME, 0)], [], out)
    t.handle([Msg(DEADLINES_NAME, 0, 0, b"e1", first("e1", mode="emergency"))], out)
    await t.between(out)
    assert out.records == [] and checked == []  # nothing announced: nothing to publish
    failure = announcement("a", start="2026-03-02 08:00", end="2026-03-02 18:00")
    t.on_mode(build_mode_state([failure], dt.datetime(2026, 3, 2, 13, tzinfo=dt.UTC)))
    assert out.records == []  # not from the follower's callback: from the loop
    await t.between(out)
    ((topic, key, value),) = out.records
    assert (topic, key) == ("ksef.deadlines", b"e1") and value is not None
    record = decode(DeadlineRecord, value)
    assert record.computed_by == "tracker" and record.invoice_id == "e1"
    assert checked == [True]
    await t.between(out)
    assert len(out.records) == 1  # published once
