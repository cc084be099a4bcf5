"""Latarnia messages: parsing, version replacement, eventId pairing, Polish dates."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.ksef.announcements import (
    WARSAW,
    AnnouncementError,
    AnnouncementHistory,
    Category,
    Message,
    MessageType,
    parse_messages,
    parse_time,
    polish_date,
)
from tests.unit.announcement_builders import maintenance, message, outage, revision

D = dt.date


def history(*groups: list[dict[str, object]] | dict[str, object]) -> AnnouncementHistory:
    flat: list[object] = []
    for group in groups:
        flat.extend(group if isinstance(group, list) else [group])
    return AnnouncementHistory.from_json(flat)


def test_parses_a_full_latarnia_message() -> None:
    raw = message(
        "m1",
        "FAILURE_START",
        "FAILURE",
        start="2025-07-09T09:00:00Z",
        published="2025-07-09T09:05:00Z",
        version=3,
        event_id="E1",
    )
    parsed = Message.from_json(raw)
    assert parsed.id == "m1" and parsed.event_id == "E1"
    assert parsed.category is Category.FAILURE
    assert parsed.type is MessageType.FAILURE_START
    assert parsed.start == dt.datetime(2025, 7, 9, 9, tzinfo=dt.UTC)
    assert parsed.end is None
    assert parsed.version == 3


def test_polish_date_of_a_late_utc_time_in_summer_is_the_next_day() -> None:
    assert polish_date(parse_time("2025-07-11T23:30:00Z")) == D(2025, 7, 12)
    assert polish_date(parse_time("2025-07-11T21:30:00Z")) == D(2025, 7, 11)
    assert polish_date(parse_time("2025-12-01T22:59:00Z")) == D(2025, 12, 1)  # winter: UTC+1
    assert polish_date(parse_time("2025-12-01T23:00:00Z")) == D(2025, 12, 2)


def test_times_without_offset_are_warsaw_local_and_dates_are_midnight() -> None:
    assert parse_time("2025-07-11T23:30:00") == dt.datetime(2025, 7, 11, 23, 30, tzinfo=WARSAW)
    assert polish_date(parse_time("2025-07-11")) == D(2025, 7, 11)


def test_window_days_are_polish_days() -> None:
    h = history(outage("E", "2025-07-09T08:00:00Z", "2025-07-11T23:30:00Z"))
    (window,) = h.windows
    assert (window.start_day, window.end_day, window.announced_day) == (
        D(2025, 7, 9),
        D(2025, 7, 12),
        D(2025, 7, 9),
    )


def test_failure_end_pairs_with_its_start_by_event_id() -> None:
    h = history(outage("E7", "2025-07-09T09:00:00+02:00", "2025-07-12T15:00:00+02:00"))
    (window,) = h.windows
    assert window.event_id == "E7"
    assert window.category is Category.FAILURE
    assert window.start == dt.datetime.fromisoformat("2025-07-09T09:00:00+02:00")
    assert window.end == dt.datetime.fromisoformat("2025-07-12T15:00:00+02:00")


def test_failure_without_end_message_is_open() -> None:
    (window,) = history(outage("E", "2025-07-09T09:00:00+02:00")).windows
    assert window.end is None and window.end_day is None


def test_different_events_stay_apart() -> None:
    h = history(
        outage("A", "2025-07-09T09:00:00+02:00", "2025-07-09T12:00:00+02:00"),
        outage("B", "2025-07-10T09:00:00+02:00"),
    )
    assert [(w.event_id, w.end_day) for w in h.windows] == [("A", D(2025, 7, 9)), ("B", None)]


@pytest.mark.parametrize("order", ["v1 first", "v2 first"])
def test_latest_version_replaces_earlier_and_end_may_move_earlier(order: str) -> None:
    v1 = message(
        "m", "MAINTENANCE_ANNOUNCEMENT", "MAINTENANCE",
        start="2025-07-10T20:00:00+02:00", end="2025-07-11T06:00:00+02:00",
        published="2025-07-01T10:00:00+02:00", version=1,
    )  # fmt: skip
    v2 = revision(v1, 2, end="2025-07-10T22:00:00+02:00", published="2025-07-05T10:00:00+02:00")
    messages = [v1, v2] if order == "v1 first" else [v2, v1]
    (window,) = history(messages).windows
    assert window.end_day == D(2025, 7, 10)
    # the window was announced when version 1 came out, not when it was corrected
    assert window.announced_day == D(2025, 7, 1)


def test_new_version_can_add_an_end_to_an_open_failure() -> None:
    v1 = message(
        "f", "FAILURE_START", "FAILURE",
        start="2025-07-09T09:00:00+02:00", published="2025-07-09T09:10:00+02:00",
    )  # fmt: skip
    v2 = revision(v1, 2, end="2025-07-12T15:00:00+02:00", published="2025-07-12T15:05:00+02:00")
    (window,) = history([v1, v2]).windows
    assert window.end_day == D(2025, 7, 12)
    assert window.announced_day == D(2025, 7, 9)


def test_first_published_carried_by_a_compacted_store_is_honoured() -> None:
    latest_only = message(
        "f", "FAILURE_START", "FAILURE", version=3, start="2025-07-09T09:00:00+02:00",
        end="2025-07-12T15:00:00+02:00", published="2025-07-12T15:05:00+02:00",
    )  # fmt: skip
    latest_only["firstPublished"] = "2025-07-09T09:10:00+02:00"
    (window,) = history([latest_only]).windows
    assert window.announced_day == D(2025, 7, 9)


def test_failure_end_wins_over_the_end_in_the_start_message() -> None:
    start = message(
        "s", "FAILURE_START", "FAILURE",
        start="2025-07-09T09:00:00+02:00", end="2025-07-10T09:00:00+02:00",
        published="2025-07-09T09:00:00+02:00", event_id="E",
    )  # fmt: skip
    end = message(
        "e", "FAILURE_END", "FAILURE",
        end="2025-07-14T09:00:00+02:00", published="2025-07-14T09:00:00+02:00", event_id="E",
    )  # fmt: skip
    (window,) = history([start, end]).windows
    assert window.end_day == D(2025, 7, 14)


def test_failure_end_without_end_field_ends_when_published() -> None:
    start = message(
        "s", "FAILURE_START", "FAILURE", start="2025-07-09T09:00:00+02:00", event_id="E"
    )
    end = message("e", "FAILURE_END", "FAILURE", published="2025-07-13T01:00:00+02:00")
    end["eventId"] = "E"
    (window,) = history([start, end]).windows
    assert window.end_day == D(2025, 7, 13)
    assert window.announced_day == D(2025, 7, 9)  # no published on the start: its start


def test_same_version_twice_the_later_published_wins() -> None:
    a = message(
        "m", "FAILURE_START", "FAILURE", start="2025-07-09T09:00:00+02:00",
        end="2025-07-10T09:00:00+02:00", published="2025-07-09T09:00:00+02:00",
    )  # fmt: skip
    b = revision(a, 1, end="2025-07-11T09:00:00+02:00", published="2025-07-09T11:00:00+02:00")
    assert history([b, a]).windows[0].end_day == D(2025, 7, 11)


def test_snake_case_event_id_and_missing_event_id() -> None:
    a = message("x", "FAILURE_START", "FAILURE", start="2025-07-09T09:00:00+02:00")
    del a["eventId"]
    b = message(
        "y", "FAILURE_END", "FAILURE", end="2025-07-10T09:00:00+02:00",
        published="2025-07-10T09:00:00+02:00",
    )  # fmt: skip
    del b["eventId"]
    b["event_id"] = "x"
    (window,) = history([a, b]).windows
    assert window.event_id == "x" and window.end_day == D(2025, 7, 10)


def test_status_document_shape_is_accepted() -> None:
    doc = {"status": "FAILURE", "messages": outage("E", "2025-07-09T09:00:00+02:00")}
    assert len(AnnouncementHistory.from_json(doc)) == 1


def test_with_messages_returns_a_new_snapshot() -> None:
    base = history(outage("E", "2025-07-09T09:00:00+02:00"))
    ended = outage("E", "2025-07-09T09:00:00+02:00", "2025-07-10T10:00:00+02:00")
    end = Message.from_json(ended[1])
    updated = base.with_messages([end])
    assert base.windows[0].end is None
    assert updated.windows[0].end_day == D(2025, 7, 10)


def test_in_force_needs_the_announcement_out() -> None:
    h = history(
        outage(
            "E", "2025-07-08T08:00:00+02:00", "2025-07-12T08:00:00+02:00",
            published="2025-07-09T10:00:00+02:00",
        )
    )  # fmt: skip
    assert h.in_force_on(D(2025, 7, 8)) == []
    assert [w.event_id for w in h.in_force_on(D(2025, 7, 9))] == ["E"]
    assert [w.event_id for w in h.in_force_on(D(2025, 7, 12))] == ["E"]
    assert h.in_force_on(D(2025, 7, 13)) == []
    noon = dt.datetime(2025, 7, 12, 12, tzinfo=WARSAW)
    assert h.in_force_at(noon) == []  # ended at 08:00
    assert len(h.in_force_at(dt.datetime(2025, 7, 12, 7, tzinfo=WARSAW))) == 1
    assert len(h.in_force_at(dt.datetime(2025, 7, 12, 7))) == 1  # naive = Warsaw time
    assert h.in_force_at(dt.datetime(2025, 7, 12, 6, 30, tzinfo=dt.UTC)) == []  # 08:30 PL


def test_maintenance_builder_round_trip() -> None:
    (window,) = history(maintenance("M", "2025-07-10T20:00:00+02:00", None)).windows
    assert window.category is Category.MAINTENANCE and window.end is None


@pytest.mark.parametrize(
    ("patch", "complaint"),
    [
        ({"category": "OUTAGE"}, "category"),
        ({"type": "FAILURE_BEGIN"}, "type"),
        ({"id": None}, "'id'"),
        ({"start": "yesterday"}, "start"),
        ({"start": None, "published": None}, "needs a start"),
        ({"end": "2025-07-01T00:00:00+02:00"}, "before its start"),
        ({"version": "two"}, "version"),
        ({"published": 12}, "published"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(
    patch: dict[str, object], complaint: str
) -> None:
    raw = {
        **message(
            "m", "FAILURE_START", "FAILURE",
            start="2025-07-09T09:00:00+02:00", published="2025-07-09T09:00:00+02:00",
        ),
        **patch,
    }  # fmt: skip
    with pytest.raises(AnnouncementError, match=complaint):
        parse_messages([raw])


def test_failure_end_with_no_time_at_all_is_refused() -> None:
    raw = message("e", "FAILURE_END", "FAILURE")
    with pytest.raises(AnnouncementError, match="FAILURE_END needs an end"):
        parse_messages([raw])


@pytest.mark.parametrize("document", [{"not": "a list"}, "text", [1, 2]])
def test_documents_that_are_not_message_lists_are_refused(document: object) -> None:
    with pytest.raises(AnnouncementError):
        parse_messages(document)


def test_lower_case_category_and_type_are_understood() -> None:
    raw = message("m", "failure_start", "total-failure", start="2025-07-09T09:00:00+02:00")
    parsed = Message.from_json(raw)
    assert parsed.category is Category.TOTAL_FAILURE
    assert parsed.type is MessageType.FAILURE_START
