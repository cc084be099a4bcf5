"""Polish time: every KSeF date is a Europe/Warsaw calendar date."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

WARSAW = ZoneInfo("Europe/Warsaw")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime | None = None) -> str:
    return (moment or now_utc()).isoformat(timespec="milliseconds")


def polish_today(moment: dt.datetime | None = None) -> dt.date:
    return (moment or now_utc()).astimezone(WARSAW).date()


def from_timestamp(seconds: float | None) -> dt.datetime:
    """A record's broker/producer time (seconds since the epoch), now when unknown."""
    if not seconds or seconds <= 0:
        return now_utc()
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
