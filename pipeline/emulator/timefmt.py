"""Time as KSeF shows it: UTC instants in ISO 8601 with offset, Polish calendar days."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

WARSAW = ZoneInfo("Europe/Warsaw")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """`2025-07-11T12:23:56.015430+00:00`: always an explicit offset."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def iso_warsaw_ms(moment: dt.datetime) -> str:
    """Polish local time with milliseconds and offset, as the UPO samples show it."""
    return moment.astimezone(WARSAW).isoformat(timespec="milliseconds")


def parse(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def polish_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(WARSAW).date()
