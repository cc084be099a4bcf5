"""Polish business-day calendar: holidays, Easter, business-day arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ksef.calendar import (
    CalendarRangeError,
    add_business_days,
    easter_sunday,
    holidays,
    is_business_day,
    is_holiday,
    next_business_day,
)

D = dt.date
days = st.dates(min_value=D(2020, 1, 1), max_value=D(2100, 12, 1))


def gauss_easter(year: int) -> dt.date:
    """Independent oracle: Gauss's Easter algorithm with the Gregorian corrections."""
    a, b, c = year % 19, year % 4, year % 7
    k = year // 100
    p = (13 + 8 * k) // 25
    q = k // 4
    m = (15 - p + k - q) % 30
    n = (4 + k - q) % 7
    d = (19 * a + m) % 30
    e = (2 * b + 4 * c + 6 * d + n) % 7
    if d == 29 and e == 6:
        return D(year, 4, 19)
    if d == 28 and e == 6 and (11 * m + 11) % 30 < 19:
        return D(year, 4, 18)
    return D(year, 3, 22) + dt.timedelta(days=d + e)


def oracle_is_business_day(day: dt.date) -> bool:
    easter = gauss_easter(day.year)
    movable = {easter + dt.timedelta(days=n) for n in (0, 1, 49, 60)}
    fixed = {(1, 1), (1, 6), (5, 1), (5, 3), (8, 15), (11, 1), (11, 11), (12, 25), (12, 26)}
    if day.year >= 2025:
        fixed.add((12, 24))
    return day.weekday() < 5 and (day.month, day.day) not in fixed and day not in movable


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (2019, D(2019, 4, 21)),
        (2024, D(2024, 3, 31)),
        (2025, D(2025, 4, 20)),
        (2026, D(2026, 4, 5)),
        (2038, D(2038, 4, 25)),  # latest possible date
        (2100, D(2100, 3, 28)),
        (2285, D(2285, 3, 22)),  # earliest possible date
    ],
)
def test_easter_sunday_known_years(year: int, easter: dt.date) -> None:
    assert easter_sunday(year) == easter


def test_easter_agrees_with_gauss_for_six_centuries() -> None:
    mismatches = [y for y in range(1700, 2300) if easter_sunday(y) != gauss_easter(y)]
    assert mismatches == []


def test_holidays_2025_exactly() -> None:
    expected = {
        D(2025, 1, 1), D(2025, 1, 6), D(2025, 4, 20), D(2025, 4, 21), D(2025, 5, 1),
        D(2025, 5, 3), D(2025, 6, 8), D(2025, 6, 19), D(2025, 8, 15), D(2025, 11, 1),
        D(2025, 11, 11), D(2025, 12, 24), D(2025, 12, 25), D(2025, 12, 26),
    }  # fmt: skip
    assert holidays(2025) == expected


def test_christmas_eve_is_a_holiday_only_from_2025() -> None:
    assert not is_holiday(D(2024, 12, 24))
    assert is_business_day(D(2024, 12, 24))  # a Tuesday
    assert is_holiday(D(2025, 12, 24))
    assert not is_business_day(D(2025, 12, 24))  # a Wednesday
    assert is_holiday(D(2100, 12, 24))


def test_good_friday_is_a_business_day_easter_monday_is_not() -> None:
    assert is_business_day(D(2025, 4, 18))
    assert not is_business_day(D(2025, 4, 21))


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2025, 7, 8), D(2025, 7, 9)),  # Wed -> Thu
        (D(2025, 7, 11), D(2025, 7, 14)),  # Fri -> Mon
        (D(2025, 7, 12), D(2025, 7, 14)),  # Sat -> Mon
        (D(2025, 8, 14), D(2025, 8, 18)),  # Thu, Aug 15 on Fri
        (D(2025, 12, 23), D(2025, 12, 29)),  # 24-26 holidays then a weekend
        (D(2024, 12, 23), D(2024, 12, 24)),  # Dec 24 still a working day in 2024
        (D(2025, 4, 18), D(2025, 4, 22)),  # Good Friday -> after Easter Monday
        (D(2025, 6, 18), D(2025, 6, 20)),  # Corpus Christi on Thu
        (D(2026, 1, 5), D(2026, 1, 7)),  # Epiphany on Tue
    ],
)
def test_next_business_day_table(day: dt.date, expected: dt.date) -> None:
    assert next_business_day(day) == expected


def test_seven_business_days_after_official_example() -> None:
    assert add_business_days(D(2025, 7, 12), 7) == D(2025, 7, 22)


def test_seven_business_days_across_christmas_and_new_year() -> None:
    assert add_business_days(D(2025, 12, 23), 7) == D(2026, 1, 8)


def test_zero_days_is_identity_and_negative_goes_back() -> None:
    assert add_business_days(D(2025, 7, 12), 0) == D(2025, 7, 12)
    assert add_business_days(D(2025, 7, 14), -1) == D(2025, 7, 11)
    assert add_business_days(D(2025, 12, 29), -1) == D(2025, 12, 23)


@pytest.mark.parametrize("day", [D(2010, 12, 31), D(2200, 1, 1)])
def test_dates_outside_the_supported_range_are_refused(day: dt.date) -> None:
    with pytest.raises(CalendarRangeError, match="outside the supported calendar range"):
        is_business_day(day)
    with pytest.raises(CalendarRangeError):
        add_business_days(day, 1)


@given(days)
def test_a_business_day_is_never_a_weekend_or_holiday(day: dt.date) -> None:
    if is_business_day(day):
        assert day.weekday() < 5
        assert not is_holiday(day)
    assert is_business_day(day) == oracle_is_business_day(day)


@given(days, st.integers(0, 40), st.integers(0, 40))
def test_adding_business_days_is_monotone_in_n(day: dt.date, n1: int, n2: int) -> None:
    low, high = sorted((n1, n2))
    assert add_business_days(day, low) <= add_business_days(day, high)
    if low < high:
        assert add_business_days(day, low) < add_business_days(day, high)


@given(days, days, st.integers(0, 30))
def test_adding_business_days_is_monotone_in_the_start(a: dt.date, b: dt.date, n: int) -> None:
    early, late = sorted((a, b))
    assert add_business_days(early, n) <= add_business_days(late, n)


@given(days, st.integers(1, 30))
def test_counting_starts_the_day_after(day: dt.date, n: int) -> None:
    result = add_business_days(day, n)
    assert is_business_day(result)
    span = [day + dt.timedelta(days=i) for i in range(1, (result - day).days + 1)]
    assert sum(map(oracle_is_business_day, span)) == n


@given(days)
def test_next_business_day_skips_only_non_business_days(day: dt.date) -> None:
    nxt = next_business_day(day)
    assert nxt > day and is_business_day(nxt)
    between = [day + dt.timedelta(days=i) for i in range(1, (nxt - day).days)]
    assert not any(map(is_business_day, between))
    assert (nxt - day).days <= 6  # longest run of days off: Wed Dec 24 to Sun Dec 28


@given(days, st.integers(0, 30))
def test_going_back_undoes_going_forward_on_business_days(day: dt.date, n: int) -> None:
    forward = add_business_days(day, n)
    back = add_business_days(forward, -n)
    assert back <= day
    if is_business_day(day):
        assert back == day
