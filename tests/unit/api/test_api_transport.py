from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import httpx
import pytest
from ksef_client.exceptions import KsefApiError as SdkApiError
from ksef_client.exceptions import KsefHttpError as SdkHttpError
from ksef_client.exceptions import KsefRateLimitError as SdkRateLimitError

from pipeline.ksef.limits import Limit
from pipeline.ksef.ratelimit import SlidingWindowLimiter
from pipeline.ksef_api.errors import (
    KsefApiError,
    KsefAuthError,
    KsefProtocolError,
    KsefRateLimited,
    KsefUnavailable,
)
from pipeline.ksef_api.health import HealthEvent, Outcome
from pipeline.ksef_api.retry import RetryPolicy
from pipeline.ksef_api.transport import Transport

NIP = "5265877635"
WALL = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make(
    time: FakeTime, limits: dict[str, Limit] | None = None, policy: RetryPolicy | None = None
) -> tuple[Transport, list[HealthEvent]]:
    events: list[HealthEvent] = []
    limiter = SlidingWindowLimiter(limits or {}, clock=time.clock)
    transport = Transport(NIP, limiter=limiter, policy=policy, observer=events.append,
                          clock=time.clock, sleep=time.sleep, wall=lambda: WALL)
    return transport, events


def scripted(*answers: object) -> tuple[Callable[[], Awaitable[object]], list[int]]:
    """An SDK call that raises or returns each answer in turn; counts its calls."""
    calls = [0]

    async def op() -> object:
        answer = answers[calls[0]]
        calls[0] += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return op, calls


def connect_refused() -> SdkHttpError:
    error = SdkHttpError(status_code=0, message="Network error during POST /v2/x")
    error.__cause__ = httpx.ConnectError("refused")
    return error


def read_timeout() -> SdkHttpError:
    error = SdkHttpError(status_code=0, message="Network error during POST /v2/x")
    error.__cause__ = httpx.ReadTimeout("slow")
    return error


def http(status: int, body: object = None, retry_after: str | None = None) -> SdkHttpError:
    if status == 429:
        return SdkRateLimitError(status_code=429, message="Too Many Requests",
                                 response_body=body, retry_after_raw=retry_after)
    return SdkApiError(status_code=status, message="API error", response_body=body)


async def test_limiter_delays_the_request_before_it_is_sent() -> None:
    time = FakeTime()
    transport, _ = make(time, {"batch-open": Limit(2, 3, 60)})
    op, calls = scripted("a", "b", "c")
    for _ in range(3):
        await transport.call("POST", "/sessions/batch", op, idempotent=False)
    assert calls[0] == 3
    assert time.slept == [pytest.approx(1.0)]  # third call waited for the 1 s window


async def test_a_wait_longer_than_allowed_is_handed_to_the_caller_without_sending() -> None:
    time = FakeTime()
    transport, _ = make(time, {"batch-open": Limit(10, 1, 60)},
                        RetryPolicy(max_rate_limit_wait=30))
    op, calls = scripted("a", "b")
    await transport.call("POST", "/sessions/batch", op, idempotent=False)
    assert transport.admission_wait("POST", "/sessions/batch") == pytest.approx(60.0)
    with pytest.raises(KsefRateLimited) as caught:
        await transport.call("POST", "/sessions/batch", op, idempotent=False)
    assert caught.value.retry_after == pytest.approx(60.0)
    assert calls[0] == 1


async def test_429_is_retried_after_retry_after_and_blocks_the_category() -> None:
    time = FakeTime()
    transport, events = make(time)
    op, calls = scripted(http(429, {"status": {"code": 429, "description": "Too Many Requests",
                                                "details": []}}, "7"), "ok")
    assert await transport.call("POST", "/sessions/batch", op, idempotent=False) == "ok"
    assert calls[0] == 2
    assert time.slept == [7.0]
    assert [e.outcome for e in events] == [Outcome.RATE_LIMITED, Outcome.OK]
    assert events[0].status == 429 and events[0].endpoint == "POST batch-open"


async def test_429_with_a_long_retry_after_raises_rate_limited() -> None:
    time = FakeTime()
    transport, _ = make(time, policy=RetryPolicy(max_rate_limit_wait=60))
    op, _calls = scripted(http(429, None, "600"))
    with pytest.raises(KsefRateLimited) as caught:
        await transport.call("GET", "/sessions/x", op, idempotent=True)
    assert caught.value.retry_after == 600.0
    assert transport.admission_wait("GET", "/sessions/x") == 0.0  # nothing blocked: gave up


async def test_idempotent_calls_are_retried_through_an_outage() -> None:
    time = FakeTime()
    transport, events = make(time, policy=RetryPolicy(attempts=4, base_delay=0.5))
    op, calls = scripted(read_timeout(), http(503), http(500), "status")
    assert await transport.call("GET", "/sessions/x", op, idempotent=True) == "status"
    assert calls[0] == 4
    assert time.slept == [0.5, 1.0, 2.0]
    assert [e.outcome for e in events] == [Outcome.UNAVAILABLE, Outcome.UNAVAILABLE,
                                           Outcome.SERVER_ERROR, Outcome.OK]


async def test_outage_retries_end_with_unavailable() -> None:
    time = FakeTime()
    transport, _ = make(time, policy=RetryPolicy(attempts=2))
    op, calls = scripted(http(503), http(502))
    with pytest.raises(KsefUnavailable) as caught:
        await transport.call("GET", "/sessions/x", op, idempotent=True)
    assert caught.value.status == 502
    assert calls[0] == 2


async def test_a_session_open_that_may_have_arrived_is_never_resent() -> None:
    time = FakeTime()
    transport, _ = make(time)
    for failure in (read_timeout(), http(503), http(500)):
        op, calls = scripted(failure, "opened")
        with pytest.raises(KsefUnavailable):
            await transport.call("POST", "/sessions/batch", op, idempotent=False)
        assert calls[0] == 1


async def test_a_refused_connection_is_retried_even_for_a_session_open() -> None:
    time = FakeTime()
    transport, _ = make(time)
    op, calls = scripted(connect_refused(), "opened")
    assert await transport.call("POST", "/sessions/batch", op, idempotent=False) == "opened"
    assert calls[0] == 2


async def test_ksef_refusals_become_typed_errors_and_are_not_retried() -> None:
    time = FakeTime()
    transport, events = make(time)
    body = {"exception": {"exceptionDetailList": [
        {"exceptionCode": 21405, "exceptionDescription": "Błąd walidacji danych wejściowych.",
         "details": ["fileHash"]}]}}
    op, calls = scripted(http(400, body))
    with pytest.raises(KsefApiError) as caught:
        await transport.call("POST", "/sessions/batch", op, idempotent=True)
    error = caught.value
    assert (error.status, error.code, error.details) == (400, 21405, ("fileHash",))
    assert not isinstance(error, KsefAuthError)
    assert calls[0] == 1
    assert events[-1].outcome is Outcome.REFUSED

    op, _ = scripted(http(401, {"title": "Unauthorized", "status": 401, "detail": "expired"}))
    with pytest.raises(KsefAuthError, match="expired"):
        await transport.call("GET", "/sessions/x", op, idempotent=True)


async def test_an_unreadable_success_is_a_protocol_error() -> None:
    time = FakeTime()
    transport, _ = make(time)
    op, _ = scripted(SdkHttpError(200, "Expected a JSON response from /sessions/x"))
    with pytest.raises(KsefProtocolError):
        await transport.call("GET", "/sessions/x", op, idempotent=True)
    op, _ = scripted(TypeError("missing 'status'"))
    with pytest.raises(KsefProtocolError, match="contract"):
        await transport.call("GET", "/sessions/x", op, idempotent=True)


async def test_a_failing_observer_does_not_fail_the_call() -> None:
    time = FakeTime()

    def broken(event: HealthEvent) -> None:
        raise RuntimeError("observer bug")

    transport = Transport(NIP, observer=broken, clock=time.clock, sleep=time.sleep)
    op, _ = scripted("fine")
    assert await transport.call("GET", "/sessions/x", op, idempotent=True) == "fine"


async def test_public_endpoints_share_one_key_across_contexts() -> None:
    time = FakeTime()
    limiter = SlidingWindowLimiter({"public": Limit(1)}, clock=time.clock)
    first = Transport("1111111111", limiter=limiter, clock=time.clock, sleep=time.sleep)
    second = Transport("2222222222", limiter=limiter, clock=time.clock, sleep=time.sleep)
    op, _ = scripted("c1", "c2")
    await first.call("POST", "/auth/challenge", op, idempotent=True)
    await second.call("POST", "/auth/challenge", op, idempotent=True)
    assert time.slept == [pytest.approx(1.0)]
