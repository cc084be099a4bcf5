"""Self-observed outages: episodes from failure/success observations."""

from __future__ import annotations

import asyncio
import datetime as dt

from pipeline.ksef_api.health import HealthEvent, Outcome
from pipeline.modes.messages import KSEF_UNREACHABLE
from pipeline.modes.observed import HealthReporter, OutageWatch
from pipeline.modes.snapshot import build_mode_state
from tests.unit.modes.builders import at
from topics.records import Announcement, ModeState

T0 = at("2026-03-02 10:00")
MINUTE = dt.timedelta(minutes=1)


def test_episode_opens_after_the_threshold_and_closes_on_success() -> None:
    watch = OutageWatch(KSEF_UNREACHABLE, threshold=MINUTE)
    assert watch.failure(T0, "HTTP 503") == []
    assert watch.failure(T0 + dt.timedelta(seconds=59), "HTTP 503") == []
    (opened,) = watch.failure(T0 + MINUTE, "HTTP 503")
    assert opened.start == "2026-03-02T10:00:00+01:00" and opened.end is None
    assert watch.failure(T0 + 2 * MINUTE, "HTTP 503") == []  # one record per episode
    (closed,) = watch.success(T0 + 3 * MINUTE)
    assert (closed.id, closed.version, closed.end) == (opened.id, 2, "2026-03-02T10:03:00+01:00")
    assert watch.success(T0 + 4 * MINUTE) == []


def test_a_success_in_between_restarts_the_count() -> None:
    watch = OutageWatch(KSEF_UNREACHABLE, threshold=MINUTE)
    watch.failure(T0, "reset")
    watch.success(T0 + dt.timedelta(seconds=30))
    assert watch.failure(T0 + MINUTE, "reset") == []


def test_episode_opened_elsewhere_is_closed_once() -> None:
    other = OutageWatch(KSEF_UNREACHABLE, threshold=dt.timedelta(0))
    (foreign,) = other.failure(T0, "HTTP 500")
    watch = OutageWatch(KSEF_UNREACHABLE, threshold=dt.timedelta(0))
    watch.inherit([foreign])
    assert watch.failure(T0 + MINUTE, "HTTP 500") == []  # already open: nothing new
    (closed,) = watch.success(T0 + 2 * MINUTE)
    assert closed.id == foreign.id and closed.end is not None
    watch.inherit([foreign])  # ksef.mode has not caught up yet
    assert watch.success(T0 + 3 * MINUTE) == []


def _event(outcome: Outcome, at_: dt.datetime, status: int | None = 503) -> HealthEvent:
    return HealthEvent("5265877635", "POST /sessions/batch", outcome, status, 0.1, at_)


async def test_health_reporter_publishes_in_order() -> None:
    published: list[Announcement] = []
    state: dict[str, ModeState | None] = {"s": None}

    async def publish(record: Announcement) -> None:
        await asyncio.sleep(0)
        published.append(record)

    reporter = HealthReporter(publish, lambda: state["s"], threshold=MINUTE)
    reporter.observe(_event(Outcome.UNAVAILABLE, T0, None))
    reporter.observe(_event(Outcome.SERVER_ERROR, T0 + MINUTE, 500))
    reporter.observe(_event(Outcome.OK, T0 + 2 * MINUTE, 200))
    await reporter.flush()
    assert [(r.version, r.end is None) for r in published] == [(1, True), (2, False)]
    assert "HTTP 500" in published[0].text

    # a restarted worker closes the episode still open in ksef.mode
    state["s"] = build_mode_state(published[:1], T0 + MINUTE)
    fresh = HealthReporter(publish, lambda: state["s"], threshold=MINUTE)
    fresh.observe(_event(Outcome.REFUSED, T0 + 5 * MINUTE, 400))
    await fresh.flush()
    assert published[-1].id == published[0].id and published[-1].end is not None
