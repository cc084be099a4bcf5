"""The KSeF state built from the announcements, and what stages derive from it."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.ksef.deadlines import Status, compute_deadline
from pipeline.ksef.modes import Mode, mode_for_new_invoice
from pipeline.modes.messages import (
    KSEF_UNREACHABLE,
    LATARNIA_UNREACHABLE,
    ended,
    observation,
    to_message,
)
from pipeline.modes.snapshot import (
    AVAILABLE,
    FAILURE,
    KEEP_ENDED_OBSERVATIONS,
    MAINTENANCE,
    OBSERVED_OUTAGE,
    TOTAL_FAILURE,
    UNKNOWN,
    build_mode_state,
    history_from_mode_state,
    same_state,
    should_hold_sessions,
)
from tests.unit.modes.builders import announcement, at
from topics.codec import decode, encode
from topics.records import ModeState

NOW = at("2026-03-02 12:00")
FAILING = announcement("f1", start="2026-03-02 08:00")
PLANNED = announcement("m1", "MAINTENANCE", start="2026-03-02 20:00", end="2026-03-02 23:00",
                       published="2026-02-25 10:00")
TOTAL = announcement("t1", "TOTAL_FAILURE", start="2026-03-02 09:00")
LATARNIA_DOWN = observation(LATARNIA_UNREACHABLE, at("2026-03-02 11:00"), NOW, "timeout")
KSEF_DOWN = observation(KSEF_UNREACHABLE, at("2026-03-02 11:30"), NOW, "HTTP 503")


@pytest.mark.parametrize(("records", "state"), [
    ([], AVAILABLE),
    ([PLANNED], AVAILABLE),  # announced, not in force yet
    ([PLANNED, FAILING], FAILURE),
    ([FAILING, TOTAL], TOTAL_FAILURE),
    ([LATARNIA_DOWN], UNKNOWN),
    ([LATARNIA_DOWN, KSEF_DOWN], OBSERVED_OUTAGE),
    ([KSEF_DOWN, FAILING], FAILURE),  # the announcement explains what we see
])
def test_state_precedence(records: list, state: str) -> None:
    assert build_mode_state(records, NOW).state == state


def test_maintenance_in_force_at_its_hour() -> None:
    state = build_mode_state([PLANNED], at("2026-03-02 21:00"))
    assert state.state == MAINTENANCE and state.since == PLANNED.start
    assert should_hold_sessions(state)


def test_latarnia_unreachable_is_unknown_not_a_failure() -> None:
    state = build_mode_state([LATARNIA_DOWN], NOW)
    assert state.state == UNKNOWN and not state.latarnia_reachable and state.ksef_reachable
    assert "not a failure" in state.reason
    assert not should_hold_sessions(state)
    history = history_from_mode_state(state)
    assert len(history) == 0
    assert mode_for_new_invoice(NOW.date(), NOW, history, state.ksef_reachable) is Mode.ONLINE


def test_self_observed_outage_makes_new_invoices_offline24() -> None:
    state = build_mode_state([KSEF_DOWN], NOW)
    assert state.state == OBSERVED_OUTAGE and not state.ksef_reachable
    assert not should_hold_sessions(state) and should_hold_sessions(state, include_observed=True)
    mode = mode_for_new_invoice(NOW.date(), NOW, history_from_mode_state(state),
                                state.ksef_reachable)
    assert mode is Mode.OFFLINE24
    recovered = build_mode_state([ended(KSEF_DOWN, at("2026-03-02 11:50"), NOW)], NOW)
    assert recovered.state == AVAILABLE and recovered.ksef_reachable


def test_total_failure_exempts_new_invoices() -> None:
    state = build_mode_state([TOTAL], NOW)
    history = history_from_mode_state(state)
    mode = mode_for_new_invoice(NOW.date(), NOW, history, state.ksef_reachable)
    assert mode is Mode.TOTAL_FAILURE
    assert compute_deadline(NOW.date(), mode, history).status is Status.EXEMPT


def test_history_round_trips_through_the_topic() -> None:
    records = [PLANNED, FAILING, KSEF_DOWN, dataclasses.replace(
        TOTAL, first_published="2026-03-02T08:30:00+01:00")]
    state = decode(ModeState, encode(build_mode_state(records, NOW)))
    history = history_from_mode_state(state)
    direct = AnnouncementHistory(to_message(r) for r in records if r.source != "observed")
    assert history.windows == direct.windows
    assert [w.event_id for w in state.windows if w.source == "observed"] == [KSEF_DOWN.id]
    assert history.window("t1") is not None
    assert history.window("t1").announced == at("2026-03-02 08:30")  # type: ignore[union-attr]


def test_available_since_survives_recomputation_and_time_is_ignored() -> None:
    first = build_mode_state([], NOW)
    later = build_mode_state([], NOW + dt.timedelta(minutes=5), first)
    assert later.since == first.since and same_state(first, later)
    assert not same_state(first, build_mode_state([FAILING], NOW, first))


def test_only_recent_ended_observations_are_kept() -> None:
    episodes = []
    for i in range(KEEP_ENDED_OBSERVATIONS + 5):
        start = at("2026-03-01 00:00") + dt.timedelta(hours=i)
        opened = observation(LATARNIA_UNREACHABLE, start, start, "timeout")
        episodes.append(ended(opened, start + dt.timedelta(minutes=5), start))
    state = build_mode_state([*episodes, LATARNIA_DOWN], NOW)
    observed = [w for w in state.windows if w.source == "observed"]
    assert len(observed) == KEEP_ENDED_OBSERVATIONS + 1
    assert observed[0].event_id == episodes[5].event_id and observed[-1].end is None
