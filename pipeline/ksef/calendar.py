"""Polish business-day calendar for KSeF submission deadlines.

A business day is any day that is neither a Saturday, a Sunday nor a statutory public
holiday (ustawa o dniach wolnych od pracy): Jan 1, Jan 6, Easter Sunday and Monday,
May 1, May 3, Pentecost Sunday (Easter + 49), Corpus Christi (Easter + 60), Aug 15,
Nov 1, Nov 11, Dec 24 (only from 2025 on), Dec 25 and Dec 26.

Jan 6 has been a holiday since 2011, so the rules hold for 2011-2199; dates outside
that range raise `CalendarRangeError` rather than give a silently wrong answer.
Holidays are computed once per year and cached, so every query is a set lookup; sums
of business days are memoised too (deadline recomputation asks the same ones often).
"""

from __future__ import annotations

import datetime as dt
from functools import cache, lru_cache

FIRST_YEAR = 2011
LAST_YEAR = 2199
CHRISTMAS_EVE_HOLIDAY_FROM = 2025

_FIXED_HOLIDAYS = ((1, 1), (1, 6), (5, 1), (5, 3), (8, 15), (11, 1), (11, 11), (12, 25), (12, 26))
_ONE_DAY = dt.timedelta(days=1)


class CalendarRangeError(ValueError):
    """A date outside the years whose holiday rules this module knows."""


def easter_sunday(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian / Meeus-Jones-Butcher algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _check_year(year: int) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise CalendarRangeError(
            f"year {year} is outside the supported calendar range {FIRST_YEAR}-{LAST_YEAR}"
        )


@cache
def holidays(year: int) -> frozenset[dt.date]:
    """Every statutory public holiday of `year` (including those falling on a weekend)."""
    _check_year(year)
    easter = easter_sunday(year)
    days = {dt.date(year, month, day) for month, day in _FIXED_HOLIDAYS}
    days |= {easter + dt.timedelta(days=offset) for offset in (0, 1, 49, 60)}
    if year >= CHRISTMAS_EVE_HOLIDAY_FROM:
        days.add(dt.date(year, 12, 24))
    return frozenset(days)


def is_holiday(day: dt.date) -> bool:
    return day in holidays(day.year)


def is_business_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in holidays(day.year)


@lru_cache(maxsize=1 << 16)
def add_business_days(day: dt.date, n: int) -> dt.date:
    """The n-th business day strictly after `day` (strictly before it when n < 0).

    Counting starts the day after the event, so `add_business_days(d, 1)` is the next
    business day after `d` whatever `d` itself is; n = 0 returns `day` unchanged.
    """
    _check_year(day.year)
    step = _ONE_DAY if n >= 0 else -_ONE_DAY
    remaining = abs(n)
    while remaining:
        day += step
        if is_business_day(day):
            remaining -= 1
    return day


def next_business_day(day: dt.date) -> dt.date:
    """The first business day strictly after `day`."""
    return add_business_days(day, 1)
