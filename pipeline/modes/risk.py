"""Which pending invoices will miss their deadline: alerts for `ksef.alerts`.

- passed: a seller has invoices still pending after the last Polish day of their
  deadline;
- at risk: at the current pace the seller's backlog due by a day cannot be in KSeF by
  the end of that day. Backlogs are cumulative: an invoice due Tuesday waits behind
  those due Monday (the submitter goes earliest deadline first). The pace is the rate
  at which the seller's invoices were accepted over the last minutes; with no
  acceptances seen it is the nominal capacity while KSeF answers and zero while it
  does not (then every deadline within the horizon is at risk).
Only deadlines ending within the horizon are judged, so a quiet hour does not raise
alarms about next week.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.ksef.announcements import WARSAW, polish_date
from pipeline.runtime.settings import DEADLINE_NOMINAL_PER_HOUR, DeadlineSettings

PACE_WINDOW = dt.timedelta(minutes=15)
# one context: 60 batch sessions an hour x 10,000 invoices (DOMAIN.md, production limits)
NOMINAL_PER_HOUR = DEADLINE_NOMINAL_PER_HOUR


@dataclass(frozen=True)
class RiskSettings:
    horizon: dt.timedelta = dt.timedelta(hours=48)
    nominal_per_hour: float = NOMINAL_PER_HOUR

    @classmethod
    def build(cls, settings: DeadlineSettings) -> RiskSettings:
        return cls(horizon=dt.timedelta(hours=settings.risk_horizon_h),
                   nominal_per_hour=settings.nominal_per_hour)


@dataclass(frozen=True)
class Risk:
    kind: str  # deadline-passed | deadline-at-risk
    seller_nip: str
    due: dt.date
    count: int  # invoices due on `due`
    backlog: int  # invoices due on or before `due`
    per_hour: float
    hours_left: float

    @property
    def alert_id(self) -> str:
        return f"{self.kind}:{self.seller_nip}:{self.due.isoformat()}"

    def message(self) -> str:
        if self.kind == "deadline-passed":
            return (f"{self.count} invoice(s) of seller {self.seller_nip} were due in KSeF by "
                    f"{self.due} and are still pending")
        pace = "no invoices are getting through" if self.per_hour <= 0 else \
            f"at {self.per_hour:,.0f} invoices/hour"
        return (f"{self.backlog} invoice(s) of seller {self.seller_nip} are due by {self.due} "
                f"({self.hours_left:.1f} h left); {pace} they will not all be in KSeF in time")


def end_of_day(day: dt.date) -> dt.datetime:
    """The first moment after the Polish day `day` (deadlines run to its end)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), WARSAW)


def assess(due_by_seller: Mapping[str, Counter[dt.date]], now: dt.datetime,
           pace_per_hour: Mapping[str, float], settings: RiskSettings) -> list[Risk]:
    """Passed and at-risk deadlines per seller, earliest first."""
    today = polish_date(now)
    found: list[Risk] = []
    for seller, counts in sorted(due_by_seller.items()):
        pace = pace_per_hour.get(seller, 0.0)
        backlog = 0
        for due in sorted(counts):
            count = counts[due]
            backlog += count
            left = (end_of_day(due) - now).total_seconds() / 3600
            if due < today:
                found.append(Risk("deadline-passed", seller, due, count, backlog, pace, left))
                continue
            if dt.timedelta(hours=left) > settings.horizon:
                break
            needed = float("inf") if pace <= 0 else backlog / pace
            if needed > left:
                found.append(Risk("deadline-at-risk", seller, due, count, backlog, pace, left))
    return found


@dataclass
class PaceMeter:
    """Acceptances per seller over a sliding window, in one-minute buckets."""

    window: dt.timedelta = PACE_WINDOW
    _buckets: dict[str, deque[tuple[int, int]]] = field(default_factory=dict)

    def _minute(self, at: dt.datetime) -> int:
        return int(at.timestamp() // 60)

    def accepted(self, seller: str, at: dt.datetime, count: int = 1) -> None:
        buckets = self._buckets.setdefault(seller, deque())
        minute = self._minute(at)
        if buckets and buckets[-1][0] == minute:
            buckets[-1] = (minute, buckets[-1][1] + count)
        else:
            buckets.append((minute, count))

    def per_hour(self, now: dt.datetime) -> dict[str, float]:
        """Observed acceptances per hour of every seller seen within the window."""
        oldest = self._minute(now - self.window)
        out = {}
        for seller, buckets in list(self._buckets.items()):
            while buckets and buckets[0][0] < oldest:
                buckets.popleft()
            if not buckets:
                del self._buckets[seller]
                continue
            out[seller] = sum(n for _, n in buckets) * 3600 / self.window.total_seconds()
        return out


def pace(sellers: list[str], observed: Mapping[str, float], ksef_reachable: bool,
         nominal_per_hour: float, share: float = 1.0) -> dict[str, float]:
    """The pace to judge each seller by (see module docstring). `share` scales the
    nominal capacity to the fraction of partitions this worker sees."""
    fallback = nominal_per_hour * share if ksef_reachable else 0.0
    return {s: observed.get(s, fallback) for s in sellers}
