"""Limit table, request classification and the sliding-window limiter."""

from __future__ import annotations

import pytest

from pipeline.ksef import limits
from pipeline.ksef.limits import Limit, classify, limit_of, limits_for
from pipeline.ksef.ratelimit import SlidingWindowLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("method", "path", "category"),
    [
        ("POST", "/v2/sessions/batch", limits.BATCH_OPEN),
        ("POST", "https://h.example/v2/sessions/batch/2025-AB-1/close", limits.BATCH_CLOSE),
        ("post", "/sessions/online", limits.ONLINE_OPEN),
        ("POST", "/sessions/online/20250101-SO-1/invoices", limits.ONLINE_INVOICE),
        ("POST", "/sessions/online/20250101-SO-1/close", limits.ONLINE_CLOSE),
        ("GET", "/v2/sessions?pageSize=10&sessionType=Batch", limits.SESSION_LIST),
        ("GET", "/sessions/R1/invoices", limits.SESSION_INVOICES),
        ("GET", "/sessions/R1/invoices/failed", limits.SESSION_INVOICES_FAILED),
        ("GET", "/sessions/R1/invoices/R2", limits.SESSION_INVOICE_STATUS),
        ("GET", "/sessions/R1", limits.SESSION_OTHER),
        ("GET", "/sessions/R1/upo/U1", limits.SESSION_OTHER),
        ("GET", "/sessions/R1/invoices/ksef/5265877635-20250826-0100001AF629-AF/upo",
         limits.SESSION_OTHER),
        ("GET", "/sessions/R1/invoices/R2/upo", limits.SESSION_OTHER),
        ("GET", "/invoices/ksef/5265877635-20250826-0100001AF629-AF", limits.INVOICE_BY_NUMBER),
    ],
)
def test_classify_documented_endpoints(method: str, path: str, category: str) -> None:
    assert classify(method, path) == category


def test_catch_all_keeps_one_counter_per_endpoint() -> None:
    tokens = classify("POST", "/v2/tokens")
    token = classify("GET", "/v2/tokens/20250101-TK-0001")
    assert tokens == "other:POST /tokens"
    assert token == "other:GET /tokens/{ref}"
    assert classify("GET", "/auth/sessions") == "other:GET /auth/sessions"
    assert classify("POST", "/auth/challenge") == "public:POST /auth/challenge"
    assert classify("GET", "/auth/20250101-AU-01") == "public:GET /auth/{ref}"
    assert limits.is_public(classify("POST", "/v2/auth/ksef-token"))
    assert limit_of(limits.LIMITS, tokens) == Limit(10, 30, 120)


def test_profiles() -> None:
    assert limits_for("production")[limits.BATCH_OPEN] == Limit(10, 20, 60)
    assert limits_for("test")[limits.BATCH_OPEN] == Limit(100, 200, 600)
    assert limits_for("test")[limits.PUBLIC] == Limit(600)
    assert limits_for("off") == {}
    with pytest.raises(ValueError, match="unknown limits profile"):
        limits_for("prod")


def test_per_second_window_slides() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter({"c": Limit(2, 100, 1000)}, clock=clock)
    assert lim.try_acquire("k", "c") is None
    clock.now += 0.4
    assert lim.try_acquire("k", "c") is None
    wait = lim.try_acquire("k", "c")
    assert wait == pytest.approx(0.6)
    assert lim.wait_time("k", "c") == pytest.approx(0.6)
    clock.now += wait or 0
    assert lim.try_acquire("k", "c") is None
    assert lim.try_acquire("k", "c") == pytest.approx(0.4)


def test_a_client_margin_lengthens_every_window() -> None:
    """Two requests one window apart on the client can arrive closer at KSeF: the
    client's limiter keeps them a margin further apart (the server's keeps none)."""
    clock = FakeClock()
    server = SlidingWindowLimiter({"c": Limit(1, 100, 1000)}, clock=clock)
    client = SlidingWindowLimiter({"c": Limit(1, 100, 1000)}, clock=clock, margin_s=0.25)
    assert server.try_acquire("k", "c") is None and client.try_acquire("k", "c") is None
    clock.now += 1.0
    assert server.try_acquire("k", "c") is None
    assert client.try_acquire("k", "c") == pytest.approx(0.25)
    clock.now += 0.25
    assert client.try_acquire("k", "c") is None
    assert client.headroom() == {("k", "c"): 0.0}
    with pytest.raises(ValueError, match="margin_s"):
        SlidingWindowLimiter({}, margin_s=-1)


def test_all_windows_apply_together_and_the_longest_wait_wins() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter({"c": Limit(10, 20, 60)}, clock=clock)
    for _ in range(20):
        assert lim.try_acquire("k", "c") is None
        clock.now += 0.2
    # 20 within 4 s: the minute window is full until the first one is 60 s old
    assert lim.try_acquire("k", "c") == pytest.approx(56.0)
    clock.now = 1000.0 + 60.0
    assert lim.try_acquire("k", "c") is None


def test_hourly_window() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter({"c": Limit(10, 20, 60)}, clock=clock)
    for _ in range(60):  # 20 per minute, never more
        assert lim.try_acquire("k", "c") is None
        clock.now += 3.01
    assert lim.try_acquire("k", "c") == pytest.approx(3600 - 60 * 3.01)


def test_refused_requests_are_not_counted_and_keys_are_independent() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter({"c": Limit(1)}, clock=clock)
    assert lim.try_acquire(("ctx", "ip1"), "c") is None
    for _ in range(5):
        assert lim.try_acquire(("ctx", "ip1"), "c") == pytest.approx(1.0)
    assert lim.try_acquire(("ctx", "ip2"), "c") is None
    clock.now += 1.0
    assert lim.try_acquire(("ctx", "ip1"), "c") is None


def test_unlimited_categories_and_catch_all_counters() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter({limits.OTHER: Limit(1)}, clock=clock)
    assert lim.try_acquire("k", "other:POST /a") is None
    assert lim.try_acquire("k", "other:POST /b") is None
    assert lim.try_acquire("k", "other:POST /a") is not None
    for _ in range(3):
        assert lim.try_acquire("k", limits.BATCH_OPEN) is None


def test_time_scale_compresses_windows() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter({"c": Limit(None, None, 2)}, clock=clock, time_scale=3600)
    assert lim.try_acquire("k", "c") is None
    assert lim.try_acquire("k", "c") is None
    assert lim.try_acquire("k", "c") == pytest.approx(1.0)
    clock.now += 1.0
    assert lim.try_acquire("k", "c") is None


def test_many_requests_stay_cheap() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter({"c": Limit(None, None, 50_000)}, clock=clock)
    for _ in range(20_000):
        clock.now += 0.5
        assert lim.try_acquire("k", "c") is None
    assert lim.check("k", "c", record=False) is None
