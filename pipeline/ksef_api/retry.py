"""When to try a KSeF call again, and how long to wait first.

Pure: no clocks read and nothing sleeps here; the transport supplies the time.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date).

    None when absent or unreadable. A date in the past gives 0. KSeF sends whole
    seconds; fractional values are accepted so a time-scaled emulator can be exact.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: exponential backoff for outages, Retry-After for 429.

    `attempts` counts every try of a retryable failure (connection error, 5xx),
    the first one included. A 429 is retried up to `rate_limit_retries` times when
    its Retry-After is at most `max_rate_limit_wait`; a longer wait is handed to the
    caller as `KsefRateLimited` rather than blocking it for minutes.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    rate_limit_retries: int = 3
    max_rate_limit_wait: float = 120.0
    default_rate_limit_wait: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")

    def backoff(self, failed_attempts: int) -> float:
        """Wait after the `failed_attempts`-th failure (1-based): base, 2*base, ... capped."""
        if failed_attempts < 1:
            raise ValueError("failed_attempts is 1-based")
        return float(min(self.max_delay, self.base_delay * 2 ** (failed_attempts - 1)))

    def outage_wait(self, failed_attempts: int, retry_after: float | None) -> float:
        """Backoff, lengthened to a 5xx's Retry-After but never beyond `max_delay`."""
        delay = self.backoff(failed_attempts)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return delay

    def may_retry_outage(self, failed_attempts: int) -> bool:
        return failed_attempts < self.attempts

    def rate_limit_wait(self, retry_after: float | None, rate_limited_so_far: int) -> float | None:
        """How long to wait before retrying a 429, or None to give up and raise."""
        wait = self.default_rate_limit_wait if retry_after is None else retry_after
        if rate_limited_so_far > self.rate_limit_retries or wait > self.max_rate_limit_wait:
            return None
        return wait


NO_RETRY = RetryPolicy(attempts=1, rate_limit_retries=0)
"""For callers that want every failure at once (e.g. a health probe)."""
