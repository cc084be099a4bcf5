"""Submission deadlines under outages: the rules of DOMAIN.md / tryby-offline.md."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ksef.announcements import WARSAW, AnnouncementHistory
from pipeline.ksef.calendar import add_business_days
from pipeline.ksef.deadlines import (
    Deadline,
    Status,
    compute_deadline,
    deadline_for,
    resolve_mode,
)
from pipeline.ksef.modes import Mode, derive_mode, mode_for_new_invoice
from tests.unit.announcement_builders import maintenance, message, outage, revision

D = dt.date
Messages = list[dict[str, Any]]

# The official example's failure: announced Thu 2025-07-09, ended Sat 2025-07-12.
OFFICIAL = outage("AW-1", "2025-07-09T09:00:00+02:00", "2025-07-12T15:00:00+02:00")
# A second failure inside the emergency window that follows it (ends Sat 07-19).
SECOND = outage("AW-2", "2025-07-18T10:00:00+02:00", "2025-07-19T10:00:00+02:00")
# Overnight maintenance Thu 2025-07-10, announced long before.
NIGHT_WORK = maintenance("PR-1", "2025-07-10T20:00:00+02:00", "2025-07-10T23:00:00+02:00")


def total(event_id: str, start: str, end: str | None = None) -> Messages:
    return outage(event_id, start, end, category="TOTAL_FAILURE")


def run(mode: str, issued: dt.date, *groups: Messages) -> Deadline:
    history = AnnouncementHistory.from_json([m for group in groups for m in group])
    return deadline_for(issued, mode, history)


def due(mode: str, issued: dt.date, *groups: Messages) -> dt.date | None:
    result = run(mode, issued, *groups)
    assert result.status is Status.DUE, result
    return result.due


# --- the official example and the base rule of each mode -----------------------------


def test_official_example_offline24_with_announced_failure() -> None:
    result = run("offline24", D(2025, 7, 8), OFFICIAL)
    assert result == Deadline(Status.DUE, D(2025, 7, 22), Mode.OFFLINE24, result.basis)
    assert "AW-1" in result.basis


def test_offline24_without_announcements_is_the_next_business_day() -> None:
    result = run("offline24", D(2025, 7, 8))
    assert (result.status, result.due) == (Status.DUE, D(2025, 7, 9))
    assert result.basis.startswith("offline24")


@pytest.mark.parametrize(
    ("issued", "expected"),
    [
        (D(2025, 7, 11), D(2025, 7, 14)),  # Friday -> Monday
        (D(2025, 7, 12), D(2025, 7, 14)),  # issued on Saturday
        (D(2025, 8, 14), D(2025, 8, 18)),  # Assumption on Friday
        (D(2025, 12, 23), D(2025, 12, 29)),  # Christmas Eve is a holiday from 2025
        (D(2024, 12, 23), D(2024, 12, 24)),  # ... but not in 2024
        (D(2025, 4, 18), D(2025, 4, 22)),  # Easter Monday
    ],
)
def test_offline24_skips_weekends_and_holidays(issued: dt.date, expected: dt.date) -> None:
    assert due("offline24", issued) == expected


def test_online_is_due_on_the_issue_date_even_on_sunday() -> None:
    result = run("online", D(2025, 7, 13))
    assert (result.status, result.due, result.mode) == (Status.DUE, D(2025, 7, 13), Mode.ONLINE)


def test_online_invoice_caught_by_a_failure_that_day_gets_the_emergency_term() -> None:
    failure = outage("AW", "2025-07-09T12:00:00+02:00", "2025-07-09T18:00:00+02:00")
    assert due("online", D(2025, 7, 9), failure) == add_business_days(D(2025, 7, 9), 7)
    assert due("online", D(2025, 7, 8), failure) == D(2025, 7, 8)  # came out a day late


def test_emergency_is_seven_business_days_after_the_failure_ends() -> None:
    assert due("emergency", D(2025, 7, 10), OFFICIAL) == D(2025, 7, 22)


def test_emergency_end_late_evening_utc_counts_on_the_polish_day() -> None:
    failure = outage("AW", "2025-07-14T08:00:00Z", "2025-07-14T22:30:00Z")  # Tue 00:30 PL
    assert due("emergency", D(2025, 7, 14), failure) == D(2025, 7, 24)


def test_emergency_over_christmas_and_new_year() -> None:
    failure = outage("AW", "2025-12-22T08:00:00+01:00", "2025-12-23T08:00:00+01:00")
    assert due("emergency", D(2025, 12, 22), failure) == D(2026, 1, 8)


def test_offline_is_the_next_business_day_after_the_unavailability() -> None:
    result = run("offline", D(2025, 7, 10), NIGHT_WORK)
    assert (result.status, result.due) == (Status.DUE, D(2025, 7, 11))
    assert "PR-1" in result.basis


def test_offline_end_after_midnight_polish_time_moves_the_day() -> None:
    # ends 23:30 UTC Wednesday = 01:30 Thursday in Warsaw
    works = maintenance("PR", "2025-07-09T20:00:00Z", "2025-07-09T23:30:00Z")
    assert due("offline", D(2025, 7, 9), works) == D(2025, 7, 11)


def test_offline_continuous_maintenance_windows_chain() -> None:
    first = maintenance("PR-a", "2025-07-11T18:00:00+02:00", "2025-07-12T06:00:00+02:00")
    second = maintenance("PR-b", "2025-07-12T06:00:00+02:00", "2025-07-14T02:00:00+02:00")
    assert due("offline", D(2025, 7, 11), first) == D(2025, 7, 14)
    assert due("offline", D(2025, 7, 11), first, second) == D(2025, 7, 15)


def test_offline_separate_later_maintenance_does_not_chain() -> None:
    later = maintenance("PR-2", "2025-07-11T20:00:00+02:00", "2025-07-11T23:00:00+02:00")
    assert due("offline", D(2025, 7, 10), NIGHT_WORK, later) == D(2025, 7, 11)


def test_offline_without_announced_end_is_open() -> None:
    works = maintenance("PR", "2025-07-10T20:00:00+02:00", None)
    result = run("offline", D(2025, 7, 10), works)
    assert (result.status, result.due) == (Status.OPEN, None)


def test_offline_without_any_unavailability_is_open() -> None:
    result = run("offline", D(2025, 7, 10))
    assert (result.status, result.due, result.mode) == (Status.OPEN, None, Mode.OFFLINE)


def test_emergency_without_any_failure_is_open() -> None:
    result = run("emergency", D(2025, 7, 10), NIGHT_WORK)
    assert (result.status, result.due) == (Status.OPEN, None)


# --- failures announced within a window ------------------------------------------------


def test_failure_announced_after_the_offline24_deadline_changes_nothing() -> None:
    late = outage("AW", "2025-07-10T09:00:00+02:00", "2025-07-12T15:00:00+02:00")
    assert due("offline24", D(2025, 7, 8), late) == D(2025, 7, 9)


def test_failure_announced_on_the_deadline_day_still_counts() -> None:
    evening = outage("AW", "2025-07-09T23:00:00+02:00", "2025-07-12T15:00:00+02:00")
    assert due("offline24", D(2025, 7, 8), evening) == D(2025, 7, 22)


def test_deadline_day_ends_at_polish_midnight_not_utc() -> None:
    # 22:30 UTC on the deadline day is 00:30 the next Polish day: too late
    after_midnight = outage("AW", "2025-07-09T22:30:00Z", "2025-07-12T15:00:00+02:00")
    assert due("offline24", D(2025, 7, 8), after_midnight) == D(2025, 7, 9)


def test_failure_in_force_when_an_offline24_invoice_is_issued_extends_it() -> None:
    assert due("offline24", D(2025, 7, 10), OFFICIAL) == D(2025, 7, 22)


def test_failure_over_before_the_issue_day_does_not_touch_the_invoice() -> None:
    assert due("offline24", D(2025, 7, 14), OFFICIAL) == D(2025, 7, 15)


def test_failure_announced_in_the_offline_window_moves_it() -> None:
    friday = outage("AW", "2025-07-11T09:00:00+02:00", "2025-07-11T15:00:00+02:00")
    assert due("offline", D(2025, 7, 10), NIGHT_WORK, friday) == D(2025, 7, 22)


def test_maintenance_announced_in_an_offline24_window_does_not_move_it() -> None:
    works = maintenance(
        "PR", "2025-07-09T08:00:00+02:00", "2025-07-10T08:00:00+02:00",
        published="2025-07-08T12:00:00+02:00",
    )  # fmt: skip
    assert due("offline24", D(2025, 7, 8), works) == D(2025, 7, 9)


def test_a_later_failure_moves_the_deadline_to_the_last_end() -> None:
    assert due("offline24", D(2025, 7, 8), OFFICIAL, SECOND) == D(2025, 7, 29)


# --- the 7-day emergency window -------------------------------------------------------


def test_new_failure_within_the_emergency_window_restarts_the_count() -> None:
    assert due("emergency", D(2025, 7, 10), OFFICIAL, SECOND) == D(2025, 7, 29)


def test_new_failure_announced_on_the_last_day_still_restarts() -> None:
    last_day = outage("AW-3", "2025-07-22T10:00:00+02:00", "2025-07-22T12:00:00+02:00")
    assert due("emergency", D(2025, 7, 10), OFFICIAL, last_day) == D(2025, 7, 31)


def test_new_failure_after_the_emergency_window_changes_nothing() -> None:
    after = outage("AW-3", "2025-07-23T10:00:00+02:00", "2025-07-23T12:00:00+02:00")
    assert due("emergency", D(2025, 7, 10), OFFICIAL, after) == D(2025, 7, 22)


def test_restarts_chain_through_several_failures() -> None:
    third = outage("AW-3", "2025-07-28T10:00:00+02:00", "2025-07-28T12:00:00+02:00")
    assert due("emergency", D(2025, 7, 10), OFFICIAL, SECOND, third) == D(2025, 8, 6)
    # without the second failure the third came after the window closed
    assert due("emergency", D(2025, 7, 10), OFFICIAL, third) == D(2025, 7, 22)


def test_open_failure_keeps_the_deadline_open() -> None:
    open_failure = outage("AW", "2025-07-09T09:00:00+02:00")
    for mode in ("offline24", "emergency"):
        result = run(mode, D(2025, 7, 9), open_failure)
        assert (result.status, result.due) == (Status.OPEN, None)


def test_open_second_failure_within_the_window_reopens_the_deadline() -> None:
    reopened = outage("AW-2", "2025-07-18T10:00:00+02:00")
    result = run("emergency", D(2025, 7, 10), OFFICIAL, reopened)
    assert (result.status, result.due) == (Status.OPEN, None)


def test_end_announced_in_a_new_version_closes_an_open_deadline() -> None:
    v1 = message(
        "m", "FAILURE_START", "FAILURE",
        start="2025-07-09T09:00:00+02:00", published="2025-07-09T09:05:00+02:00",
    )  # fmt: skip
    # published long after the offline24 deadline
    v2 = revision(v1, 2, end="2025-07-12T15:00:00+02:00", published="2025-07-25T10:00:00+02:00")
    assert run("offline24", D(2025, 7, 8), [v1]).status is Status.OPEN
    assert due("offline24", D(2025, 7, 8), [v1, v2]) == D(2025, 7, 22)


def test_end_moved_earlier_in_a_new_version_shortens_the_emergency_term() -> None:
    v1 = message(
        "m", "FAILURE_START", "FAILURE", start="2025-07-09T09:00:00+02:00",
        end="2025-07-12T15:00:00+02:00", published="2025-07-09T09:05:00+02:00",
    )  # fmt: skip
    v2 = revision(v1, 2, end="2025-07-10T15:00:00+02:00")
    assert due("emergency", D(2025, 7, 9), [v1]) == D(2025, 7, 22)
    assert due("emergency", D(2025, 7, 9), [v2, v1]) == D(2025, 7, 21)


# --- total failure --------------------------------------------------------------------


def test_total_failure_within_the_offline24_window_exempts() -> None:
    blackout = total("TF", "2025-07-09T09:00:00+02:00")
    result = run("offline24", D(2025, 7, 8), blackout)
    assert result == Deadline(Status.EXEMPT, None, Mode.OFFLINE24, result.basis)
    assert "TF" in result.basis


def test_total_failure_within_the_emergency_window_exempts() -> None:
    blackout = total("TF", "2025-07-15T09:00:00+02:00", "2025-07-16T09:00:00+02:00")
    assert run("emergency", D(2025, 7, 10), OFFICIAL, blackout).status is Status.EXEMPT


def test_total_failure_after_the_deadline_changes_nothing() -> None:
    blackout = total("TF", "2025-07-23T09:00:00+02:00", "2025-07-24T09:00:00+02:00")
    assert due("emergency", D(2025, 7, 10), OFFICIAL, blackout) == D(2025, 7, 22)


def test_total_failure_during_an_open_failure_exempts() -> None:
    open_failure = outage("AW", "2025-07-09T09:00:00+02:00")
    blackout = total("TF", "2025-08-01T09:00:00+02:00")
    assert run("offline24", D(2025, 7, 8), open_failure, blackout).status is Status.EXEMPT


def test_total_failure_over_before_the_invoice_changes_nothing() -> None:
    blackout = total("TF", "2025-07-01T09:00:00+02:00", "2025-07-02T09:00:00+02:00")
    assert due("offline24", D(2025, 7, 8), blackout) == D(2025, 7, 9)


def test_total_failure_mode_is_always_exempt() -> None:
    result = compute_deadline(D(2025, 7, 8), Mode.TOTAL_FAILURE, AnnouncementHistory())
    assert (result.status, result.due) == (Status.EXEMPT, None)


# --- auto: the mode from the announcements in force -----------------------------------


@pytest.mark.parametrize(
    ("groups", "issued", "mode", "status", "deadline"),
    [
        ([], D(2025, 7, 10), Mode.OFFLINE24, Status.DUE, D(2025, 7, 11)),
        ([NIGHT_WORK], D(2025, 7, 10), Mode.OFFLINE, Status.DUE, D(2025, 7, 11)),
        ([OFFICIAL], D(2025, 7, 10), Mode.EMERGENCY, Status.DUE, D(2025, 7, 22)),
        ([OFFICIAL, NIGHT_WORK], D(2025, 7, 10), Mode.EMERGENCY, Status.DUE, D(2025, 7, 22)),
        (
            [OFFICIAL, NIGHT_WORK, total("TF", "2025-07-10T05:00:00+02:00")],
            D(2025, 7, 10), Mode.TOTAL_FAILURE, Status.EXEMPT, None,
        ),
        ([outage("AW", "2025-07-09T09:00:00+02:00")], D(2025, 7, 10), Mode.EMERGENCY,
         Status.OPEN, None),
        ([OFFICIAL], D(2025, 7, 13), Mode.OFFLINE24, Status.DUE, D(2025, 7, 14)),
    ],
)  # fmt: skip
def test_auto_derives_the_mode(
    groups: list[Messages],
    issued: dt.date,
    mode: Mode,
    status: Status,
    deadline: dt.date | None,
) -> None:
    result = run("auto", issued, *groups)
    assert (result.mode, result.status, result.due) == (mode, status, deadline)


def test_auto_ignores_a_failure_not_yet_announced_on_the_issue_day() -> None:
    # started Tuesday, announced Wednesday: Tuesday's invoices were offline24, and the
    # announcement inside their window then extends them
    late = outage(
        "AW", "2025-07-08T08:00:00+02:00", "2025-07-12T15:00:00+02:00",
        published="2025-07-09T10:00:00+02:00",
    )  # fmt: skip
    result = run("auto", D(2025, 7, 8), late)
    assert (result.mode, result.due) == (Mode.OFFLINE24, D(2025, 7, 22))


def test_derive_mode_at_a_moment_respects_times() -> None:
    history = AnnouncementHistory.from_json(OFFICIAL)
    during = dt.datetime(2025, 7, 12, 14, tzinfo=WARSAW)
    after = dt.datetime(2025, 7, 12, 16, tzinfo=WARSAW)
    assert derive_mode(during, history) is Mode.EMERGENCY
    assert derive_mode(after, history) is Mode.OFFLINE24
    assert derive_mode(D(2025, 7, 12), history) is Mode.EMERGENCY


def test_mode_for_new_invoice() -> None:
    history = AnnouncementHistory.from_json(OFFICIAL)
    now = dt.datetime(2025, 7, 14, 10, tzinfo=WARSAW)
    assert mode_for_new_invoice(D(2025, 7, 14), now, history) is Mode.ONLINE
    assert mode_for_new_invoice(D(2025, 7, 14), now, history, ksef_reachable=False) is (
        Mode.OFFLINE24
    )
    assert mode_for_new_invoice(D(2025, 7, 11), now, history) is Mode.EMERGENCY
    assert mode_for_new_invoice(D(2025, 7, 8), now, history) is Mode.OFFLINE24
    during = dt.datetime(2025, 7, 10, 10, tzinfo=WARSAW)
    assert mode_for_new_invoice(D(2025, 7, 10), during, history) is Mode.EMERGENCY


def test_resolve_mode_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown mode 'offline48'"):
        resolve_mode("offline48", D(2025, 7, 8), AnnouncementHistory())


def test_deadline_as_dict_shape() -> None:
    assert run("offline24", D(2025, 7, 8)).as_dict() == {
        "deadline": "2025-07-09",
        "status": "due",
        "mode": "offline24",
        "basis": "offline24: next business day after 2025-07-08",
    }
    pending = run("emergency", D(2025, 7, 8), outage("AW", "2025-07-08T09:00:00+02:00"))
    assert pending.as_dict()["deadline"] is None and pending.as_dict()["status"] == "open"
    for result in (pending, run("offline24", D(2025, 7, 8), OFFICIAL)):
        assert Deadline.from_dict(result.as_dict()) == result


# --- properties -----------------------------------------------------------------------

MODES = [Mode.ONLINE, Mode.OFFLINE24, Mode.OFFLINE, Mode.EMERGENCY]
START = dt.datetime(2025, 6, 1, tzinfo=WARSAW)


@st.composite
def windows(draw: st.DrawFn, event_id: str) -> Messages:
    """A random outage in June-August 2025, published around its start."""
    category = draw(st.sampled_from(["FAILURE", "FAILURE", "TOTAL_FAILURE", "MAINTENANCE"]))
    start = START + dt.timedelta(hours=draw(st.integers(0, 24 * 80)))
    end = (
        None
        if draw(st.integers(0, 4)) == 0
        else start + dt.timedelta(hours=draw(st.integers(1, 24 * 6)))
    )
    lead = dt.timedelta(hours=draw(st.integers(-72, 72)))
    published = (start - abs(lead)) if category == "MAINTENANCE" else start + abs(lead)
    if category == "MAINTENANCE":
        return maintenance(
            event_id,
            start.isoformat(),
            None if end is None else end.isoformat(),
            published=published.isoformat(),
        )
    return outage(
        event_id,
        start.isoformat(),
        None if end is None else end.isoformat(),
        published=published.isoformat(),
        category=category,
    )


@st.composite
def histories(draw: st.DrawFn) -> Messages:
    count = draw(st.integers(0, 5))
    return [m for i in range(count) for m in draw(windows(f"E{i}"))]


issue_days = st.dates(min_value=D(2025, 6, 1), max_value=D(2025, 8, 31))


@settings(max_examples=300, deadline=None)
@given(histories(), issue_days, st.sampled_from(MODES))
def test_deadline_never_precedes_the_issue_date(
    messages: Messages, issued: dt.date, mode: Mode
) -> None:
    result = compute_deadline(issued, mode, AnnouncementHistory.from_json(messages))
    assert (result.due is not None) == (result.status is Status.DUE)
    if result.due is not None:
        assert result.due >= issued
    assert result.mode is mode and result.basis


@settings(max_examples=200, deadline=None)
@given(histories(), issue_days, st.sampled_from(MODES), windows("LATE"))
def test_an_outage_announced_after_the_deadline_changes_nothing(
    messages: Messages, issued: dt.date, mode: Mode, late: Messages
) -> None:
    before = compute_deadline(issued, mode, AnnouncementHistory.from_json(messages))
    if before.due is None:
        return
    # move the extra outage (and its announcement) past the deadline
    shift = dt.datetime.combine(before.due + dt.timedelta(days=1), dt.time(), WARSAW)
    moved = []
    for m in late:
        fields = {k: m[k] for k in ("start", "end", "published") if m[k]}
        base = dt.datetime.fromisoformat(late[0]["start"])
        for key, value in fields.items():
            m = {**m, key: (shift + (dt.datetime.fromisoformat(value) - base)).isoformat()}
        if dt.datetime.fromisoformat(m["published"]) < dt.datetime.fromisoformat(m["start"]):
            m = {**m, "published": m["start"]}
        moved.append(m)
    after = compute_deadline(issued, mode, AnnouncementHistory.from_json(messages + moved))
    assert after == before


@settings(max_examples=200, deadline=None)
@given(histories(), issue_days, st.sampled_from([Mode.ONLINE, Mode.OFFLINE24]), windows("MORE"))
def test_another_announcement_never_brings_a_deadline_forward(
    messages: Messages, issued: dt.date, mode: Mode, extra: Messages
) -> None:
    """For modes whose base window needs no announcement. (An offline/emergency invoice
    whose governing window was unknown may legitimately get an earlier deadline once
    that window is announced.)"""
    before = compute_deadline(issued, mode, AnnouncementHistory.from_json(messages))
    after = compute_deadline(issued, mode, AnnouncementHistory.from_json(messages + extra))
    if before.due is not None and after.due is not None:
        assert after.due >= before.due


def test_many_groups_share_one_history() -> None:
    """Every (issue day, mode) pair of a summer gets an answer from one snapshot."""
    history = AnnouncementHistory.from_json(OFFICIAL + SECOND + NIGHT_WORK)
    days = [D(2025, 6, 1) + dt.timedelta(days=i) for i in range(92)]
    results = {(d, m): compute_deadline(d, m, history) for d in days for m in MODES}
    assert results[(D(2025, 7, 8), Mode.OFFLINE24)].due == D(2025, 7, 29)
    assert all(r.due is None or r.due >= d for (d, _), r in results.items())
