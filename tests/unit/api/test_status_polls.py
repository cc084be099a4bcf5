"""How often a session's status is polled: soon after it ends, and within KSeF's limits."""

from __future__ import annotations

import itertools

import pytest

from pipeline.ksef.limits import SESSION_OTHER, limits_for
from pipeline.ksef_api.status_polls import StatusPolls


def _poll_times(polls: StatusPolls, horizon_s: float) -> list[float]:
    """Moments of every poll of one session that stays unprocessed for `horizon_s`."""
    times, now, pause = [0.0], 0.0, None
    while True:
        pause = polls.next_pause(pause, now)
        now += pause
        if now > horizon_s:
            return times
        times.append(now)


def _most_in_any_window(times: list[float], window_s: float) -> int:
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_a_session_processed_in_its_first_minute_is_seen_within_a_second():
    times = _poll_times(StatusPolls(), 55.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] == pytest.approx(0.1)
    assert max(gaps) == pytest.approx(1.0)
    assert times[1:4] == pytest.approx([0.1, 0.3, 0.7])


def test_later_polls_slow_down_to_five_seconds():
    times = _poll_times(StatusPolls(), 600.0)
    late = [b - a for a, b in itertools.pairwise(times) if a >= 70.0]
    assert late and set(late) == {5.0}


def test_one_session_stays_within_the_production_limits():
    limit = limits_for("production")[SESSION_OTHER]
    assert limit.per_minute is not None and limit.per_hour is not None
    times = _poll_times(StatusPolls(), 3 * 3600.0)
    # half a minute's allowance: a second session of the context fits beside it
    assert _most_in_any_window(times, 60.0) <= limit.per_minute // 2
    assert _most_in_any_window(times, 3600.0) <= limit.per_hour


def test_the_old_schedule_waited_up_to_five_seconds_after_the_first_seconds():
    # The schedule before: doubling to 5 s from the start. A session processed in 3.6 s
    # was seen at 6.3 s; now at 4.5 s.
    def seen_at(polls: StatusPolls, done_s: float) -> float:
        return next(t for t in _poll_times(polls, 60.0) if t >= done_s)

    old = StatusPolls(brisk_s=5.0, brisk_for_s=0.0)
    assert seen_at(old, 3.6) == pytest.approx(6.3)
    assert seen_at(StatusPolls(), 3.6) == pytest.approx(4.5)


@pytest.mark.parametrize("kwargs", [{"first_s": 0}, {"first_s": 2.0}, {"brisk_s": 6.0},
                                    {"brisk_for_s": -1}])
def test_a_schedule_that_makes_no_sense_is_refused(kwargs):
    with pytest.raises(ValueError):
        StatusPolls(**kwargs)
