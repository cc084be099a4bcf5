"""Deadline alerts: passed, and backlogs that cannot make it at the current pace."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from pipeline.modes import alerts
from pipeline.modes.messages import KSEF_UNREACHABLE, ended, observation
from pipeline.modes.risk import PaceMeter, RiskSettings, assess, end_of_day, pace
from tests.unit.modes.builders import announcement, at

SELLER = "5265877635"
NOW = at("2026-03-10 20:00")  # Tuesday evening: 4 hours left of the day
SETTINGS = RiskSettings(horizon=dt.timedelta(hours=48), nominal_per_hour=600_000)
TODAY, TOMORROW, NEXT_WEEK = dt.date(2026, 3, 10), dt.date(2026, 3, 11), dt.date(2026, 3, 17)


def _due(**counts: int) -> dict[str, Counter[dt.date]]:
    days = {"yesterday": TODAY - dt.timedelta(days=1), "today": TODAY,
            "tomorrow": TOMORROW, "next_week": NEXT_WEEK}
    return {SELLER: Counter({days[k]: n for k, n in counts.items()})}


def test_deadline_passed_is_always_reported() -> None:
    (risk,) = assess(_due(yesterday=3), NOW, {SELLER: 1e9}, SETTINGS)
    assert risk.kind == "deadline-passed" and risk.count == 3
    alert = alerts.for_risk(risk, NOW, ["a", "b", "c"])
    assert alert.alert_id == f"deadline-passed:{SELLER}:2026-03-09"
    assert alert.severity == "critical" and "still pending" in alert.message


def test_backlog_is_cumulative_and_judged_by_the_pace() -> None:
    due = _due(today=30_000, tomorrow=50_000)
    # 10,000/h: today's 30,000 need 3 h of the 4 left; 80,000 by tomorrow need 8 of 28
    assert assess(due, NOW, {SELLER: 10_000}, SETTINGS) == []
    # 5,000/h: today's need 6 h > 4 h; tomorrow's 80,000 need 16 h < 28 h
    (risk,) = assess(due, NOW, {SELLER: 5_000}, SETTINGS)
    assert (risk.kind, risk.due, risk.backlog) == ("deadline-at-risk", TODAY, 30_000)
    assert "5,000 invoices/hour" in risk.message()


def test_no_pace_puts_only_deadlines_within_the_horizon_at_risk() -> None:
    risks = assess(_due(tomorrow=1, next_week=1), NOW, {SELLER: 0.0}, SETTINGS)
    assert [(r.kind, r.due) for r in risks] == [("deadline-at-risk", TOMORROW)]
    assert "no invoices are getting through" in risks[0].message()


def test_pace_meter_and_fallbacks() -> None:
    meter = PaceMeter(window=dt.timedelta(minutes=10))
    for minute in range(10):
        meter.accepted(SELLER, NOW - dt.timedelta(minutes=minute), 1_000)
    meter.accepted("other", NOW - dt.timedelta(minutes=30), 5)  # outside the window
    observed = meter.per_hour(NOW)
    assert observed == {SELLER: 10_000 * 6}
    assert pace([SELLER, "idle"], observed, True, 600_000, share=0.5) == {
        SELLER: 60_000, "idle": 300_000}
    assert pace(["idle"], observed, False, 600_000) == {"idle": 0.0}


def test_end_of_day_is_polish_midnight() -> None:
    assert end_of_day(dt.date(2026, 7, 12)).isoformat() == "2026-07-13T00:00:00+02:00"


def test_announcement_and_reachability_alerts() -> None:
    failure = announcement("f1", start="2026-03-02 08:00")
    alert = alerts.for_announcement(failure, NOW)
    assert alert is not None and alert.severity == "critical"
    assert alert.alert_id == "announcement:f1:v1" and "no announced end" in alert.message
    down = observation(KSEF_UNREACHABLE, NOW, NOW, "HTTP 503")
    raised = alerts.for_announcement(down, NOW)
    assert raised is not None and raised.kind == "ksef-unreachable"
    assert "offline24" in raised.message
    assert alerts.for_announcement(down, NOW, announced_in_force=True) is None
    back = alerts.for_announcement(ended(down, NOW, NOW), NOW)
    assert back is not None and back.kind == "ksef-reachable" and back.severity == "info"
