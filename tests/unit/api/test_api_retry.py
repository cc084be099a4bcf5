from __future__ import annotations

import datetime as dt

import pytest

from pipeline.ksef_api.retry import RetryPolicy, parse_retry_after

NOW = dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("30", 30.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("-4", 0.0),
        ("Mon, 02 Mar 2026 12:00:45 GMT", 45.0),
        ("Mon, 02 Mar 2026 11:59:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_outage_retries_are_bounded_by_attempts() -> None:
    policy = RetryPolicy(attempts=3)
    assert [policy.may_retry_outage(n) for n in (1, 2, 3)] == [True, True, False]


def test_rate_limit_wait_honours_header_and_gives_up_when_too_long_or_too_often() -> None:
    policy = RetryPolicy(rate_limit_retries=2, max_rate_limit_wait=60, default_rate_limit_wait=3)
    assert policy.rate_limit_wait(10, 1) == 10
    assert policy.rate_limit_wait(None, 1) == 3
    assert policy.rate_limit_wait(61, 1) is None
    assert policy.rate_limit_wait(10, 3) is None


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=5, max_delay=1)


def test_outage_wait_respects_retry_after_within_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    assert policy.outage_wait(1, None) == 0.5
    assert policy.outage_wait(1, 2.0) == 2.0
    assert policy.outage_wait(1, 300.0) == 4.0
    assert policy.outage_wait(3, 0.1) == 2.0
