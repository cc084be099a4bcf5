"""One request's life: limits before sending, health after, retries between, typed errors.

Every HTTP request of the client passes `Transport.run`:
1. admission: the documented sliding windows of its endpoint category are checked on a
   `SlidingWindowLimiter` keyed by the seller context (or shared "public" key for the
   per-IP public endpoints), and any Retry-After KSeF gave earlier for that category is
   waited out, all before a byte is sent;
2. the attempt itself (an SDK call, or our own part upload);
3. a `HealthEvent` to the observer;
4. retry: a 429 is retried after its Retry-After; a connection error or 5xx is retried
   with backoff only if the call is idempotent or the request never left (connect
   failure). A session open or invoice send that may have reached KSeF is never re-sent
   here: the caller gets `KsefUnavailable` and decides (e.g. by listing sessions).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from ksef_client.exceptions import KsefHttpError as SdkHttpError

from pipeline.ksef.limits import classify, is_public
from pipeline.ksef.ratelimit import SlidingWindowLimiter
from pipeline.ksef_api.errors import (
    KsefApiError,
    KsefAuthError,
    KsefError,
    KsefProtocolError,
    KsefRateLimited,
    KsefUnavailable,
)
from pipeline.ksef_api.health import HealthEvent, HealthObserver, Outcome, notify
from pipeline.ksef_api.problems import parse_problem
from pipeline.ksef_api.retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

T = TypeVar("T")
PUBLIC_KEY = "public"
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


class AttemptFailed(Exception):
    """One attempt's failure, classified for the retry loop (internal)."""

    def __init__(
        self,
        error: KsefError,
        outcome: Outcome,
        status: int | None,
        *,
        sent: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.outcome = outcome
        self.status = status
        self.sent = sent
        self.retry_after = retry_after


def failure_of_status(
    operation: str,
    status: int,
    body: object,
    *,
    retry_after_header: str | None,
    now: dt.datetime,
    category: str = "",
    reason: str = "",
    auth_statuses: tuple[int, ...] = (401, 403),
) -> AttemptFailed:
    """Classify a non-success HTTP answer into the error the caller will see.

    `auth_statuses` become `KsefAuthError`; a pre-signed upload passes () since its 403
    means "upload window over", not a KSeF identity problem.
    """
    problem = parse_problem(status, body, reason)
    outcome = Outcome.of_status(status)
    if status == 429:
        retry_after = parse_retry_after(retry_after_header, now)
        error: KsefError = KsefRateLimited(
            f"{operation}: KSeF rate limit: {problem.description}",
            retry_after=1.0 if retry_after is None else retry_after,
            category=category,
        )
        return AttemptFailed(error, outcome, status, retry_after=retry_after)
    if status >= 500:
        more = f" ({'; '.join(problem.details)})" if problem.details else ""
        error = KsefUnavailable(
            f"{operation}: HTTP {status}: {problem.description}{more}", status=status
        )
        return AttemptFailed(error, outcome, status,
                             retry_after=parse_retry_after(retry_after_header, now))
    if status < 400:
        error = KsefProtocolError(f"{operation}: unexpected HTTP {status}: {problem.description}")
        return AttemptFailed(error, Outcome.OK, status)
    kind = KsefAuthError if status in auth_statuses else KsefApiError
    error = kind(status, problem.code, problem.description, problem.details, operation=operation)
    return AttemptFailed(error, outcome, status)


def failure_of_sdk_error(
    exc: SdkHttpError, operation: str, *, now: dt.datetime, category: str = ""
) -> AttemptFailed:
    if exc.status_code == 0:  # the SDK's marker for "no HTTP response"
        cause = exc.__cause__
        sent = not isinstance(cause, _NOT_SENT)
        what = type(cause).__name__ if cause is not None else "network error"
        return AttemptFailed(
            KsefUnavailable(f"{operation}: no answer from KSeF ({what})"),
            Outcome.UNAVAILABLE,
            None,
            sent=sent,
        )
    body = exc.response_body if exc.response_body is not None else exc.message
    if exc.status_code < 300:  # a 2xx the SDK could not read (not JSON, wrong shape)
        return AttemptFailed(
            KsefProtocolError(f"{operation}: unreadable KSeF answer: {exc.message[:300]}"),
            Outcome.OK,
            exc.status_code,
        )
    return failure_of_status(
        operation,
        exc.status_code,
        body,
        retry_after_header=exc.retry_after_raw,
        now=now,
        category=category,
    )


class Transport:
    """Admission, retry and health for the requests of one seller context."""

    def __init__(
        self,
        context: str,
        *,
        limiter: SlidingWindowLimiter | None = None,
        policy: RetryPolicy | None = None,
        observer: HealthObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.context = context
        self.limiter = limiter
        self.policy = policy or RetryPolicy()
        self.observer = observer
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._blocked_until: dict[str, float] = {}

    def now(self) -> dt.datetime:
        return self._wall()

    def _key(self, category: str) -> str:
        return PUBLIC_KEY if is_public(category) else self.context

    def admission_wait(self, method: str, path: str) -> float:
        """Seconds until a request to `path` would be let through (0 = now); records nothing."""
        category = classify(method, path)
        blocked = max(0.0, self._blocked_until.get(category, 0.0) - self._clock())
        limited = None if self.limiter is None else self.limiter.wait_time(
            self._key(category), category
        )
        return max(blocked, limited or 0.0)

    async def _admit(self, category: str) -> None:
        while True:
            blocked = self._blocked_until.get(category, 0.0) - self._clock()
            wait: float | None
            if blocked > 0:
                wait = blocked
            elif self.limiter is None:
                return
            else:
                wait = self.limiter.try_acquire(self._key(category), category)
                if wait is None:
                    return
            if wait > self.policy.max_rate_limit_wait:
                raise KsefRateLimited(
                    f"{category}: the request limit of context {self.context} allows the next "
                    f"call in {wait:.1f} s",
                    retry_after=wait,
                    category=category,
                )
            await self._sleep(wait)

    def _block(self, category: str, seconds: float) -> None:
        until = self._clock() + seconds
        self._blocked_until[category] = max(until, self._blocked_until.get(category, 0.0))

    def _report(self, endpoint: str, outcome: Outcome, status: int | None, started: float) -> None:
        notify(
            self.observer,
            HealthEvent(self.context, endpoint, outcome, status, self._clock() - started,
                        self._wall()),
        )

    async def call(
        self, method: str, path: str, op: Callable[[], Awaitable[T]], *, idempotent: bool
    ) -> T:
        """Run one SDK call (`op`) for `method path` through admission, retry and health."""
        category = classify(method, path)
        operation = f"{method} {category}"

        async def attempt() -> T:
            try:
                return await op()
            except SdkHttpError as exc:
                raise failure_of_sdk_error(
                    exc, operation, now=self._wall(), category=category
                ) from exc
            except (TypeError, ValueError, KeyError) as exc:  # the SDK could not map the body
                raise AttemptFailed(
                    KsefProtocolError(f"{operation}: KSeF answer breaks the contract: {exc}"),
                    Outcome.OK,
                    None,
                ) from exc

        return await self.run(operation, category, attempt, idempotent=idempotent)

    async def run(
        self,
        endpoint: str,
        category: str | None,
        attempt: Callable[[], Awaitable[T]],
        *,
        idempotent: bool,
    ) -> T:
        """Retry loop around `attempt`, which raises `AttemptFailed` on a classified failure.

        `category` None means "not rate limited" (pre-signed part uploads).
        """
        outages = 0
        rate_limited = 0
        while True:
            if category is not None:
                await self._admit(category)
            started = self._clock()
            try:
                result = await attempt()
            except AttemptFailed as failed:
                self._report(endpoint, failed.outcome, failed.status, started)
                if failed.outcome is Outcome.RATE_LIMITED:
                    rate_limited += 1
                    wait = self.policy.rate_limit_wait(failed.retry_after, rate_limited)
                    if wait is None:
                        raise failed.error from failed.__cause__
                    log.info("%s: KSeF asked to wait %.1f s (429)", endpoint, wait)
                    if category is not None:
                        self._block(category, wait)
                    else:
                        await self._sleep(wait)
                    continue
                retryable = failed.outcome in (Outcome.UNAVAILABLE, Outcome.SERVER_ERROR)
                if retryable and (idempotent or not failed.sent):
                    outages += 1
                    if self.policy.may_retry_outage(outages):
                        delay = self.policy.outage_wait(outages, failed.retry_after)
                        log.info("%s failed (%s); retry %d in %.1f s",
                                 endpoint, failed.error, outages, delay)
                        await self._sleep(delay)
                        continue
                raise failed.error from failed.__cause__
            self._report(endpoint, Outcome.OK, None, started)
            return result
