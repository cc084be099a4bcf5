"""Sliding-window request limiter, the model KSeF enforces (and clients should respect).

Every request counts against all windows of its category (second, minute, hour) at once;
a request is allowed only when none of them is full. Windows slide: a request made at
``t`` stops counting at ``t + window``. Counters are kept per (key, category), where the
key is whatever identifies the caller (for KSeF: context + client IP, or the IP alone for
public endpoints). Pure: the clock is injectable and nothing sleeps.

`time_scale` compresses time so an hour of limits can be rehearsed quickly: with a scale of
60 the hourly window lasts one real minute, and returned waits are real seconds.

`margin_s` (seconds of the limits' own time, as the windows) lengthens every window on
the client's side: the client stamps a request when it lets it go, the server when it
arrives, so two requests a window apart here can arrive closer than that after uneven
network delays and the second be refused with a 429. The server's limiter keeps none.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

from pipeline.ksef.limits import Limit, limit_of

_COMPACT_AFTER = 1024
_PRUNE_EVERY = 4096


@dataclass
class _Stamps:
    """Sorted request times (logical seconds) of one counter; `start` skips expired ones."""

    times: list[float] = field(default_factory=list)
    start: int = 0

    def expire(self, before: float) -> None:
        self.start = bisect_right(self.times, before, lo=self.start)
        if self.start > _COMPACT_AFTER and self.start * 2 > len(self.times):
            del self.times[: self.start]
            self.start = 0


@dataclass(frozen=True)
class Refusal:
    """Why a request would be refused: which window is full and how long until it is not."""

    retry_after: float
    window: float
    cap: int

    def message(self) -> str:
        names = {1.0: "second", 60.0: "minute", 3600.0: "hour"}
        per = names.get(self.window, f"{self.window:g} s")
        return f"limit of {self.cap} requests per {per} exceeded; retry in {self.retry_after:.3g} s"


class SlidingWindowLimiter:
    """Counts requests per (key, category) against `limits`; categories without a limit pass."""

    def __init__(
        self,
        limits: Mapping[str, Limit],
        clock: Callable[[], float] = time.monotonic,
        time_scale: float = 1.0,
        margin_s: float = 0.0,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        if margin_s < 0:
            raise ValueError(f"margin_s must not be negative, got {margin_s}")
        self._limits = dict(limits)
        self._clock = clock
        self._scale = time_scale
        self._margin = margin_s  # of the limits' own time, like the windows it lengthens
        self._stamps: dict[tuple[Hashable, str], _Stamps] = {}
        self._lock = threading.Lock()
        self._since_prune = 0

    @property
    def time_scale(self) -> float:
        return self._scale

    def limit(self, category: str) -> Limit | None:
        return limit_of(self._limits, category)

    def try_acquire(self, key: Hashable, category: str) -> float | None:
        """Record the request and return None if allowed, else the real seconds to wait."""
        refusal = self.check(key, category, record=True)
        return None if refusal is None else refusal.retry_after

    def wait_time(self, key: Hashable, category: str) -> float | None:
        """Like `try_acquire` without recording: None if a request would be allowed now."""
        refusal = self.check(key, category, record=False)
        return None if refusal is None else refusal.retry_after

    def check(self, key: Hashable, category: str, *, record: bool) -> Refusal | None:
        """The refusal a request would get now (None = allowed; recorded when `record`)."""
        limit = self.limit(category)
        if limit is None:
            return None
        windows = self._windows(limit)
        with self._lock:
            now = self._clock() * self._scale
            stamps = self._stamps.setdefault((key, category), _Stamps())
            stamps.expire(now - max(span for span, _ in windows))
            refusal = self._refusal(stamps, windows, now)
            if refusal is None and record:
                stamps.times.append(now)
                self._maybe_prune(now)
            return refusal

    def _windows(self, limit: Limit) -> tuple[tuple[float, int], ...]:
        """(span, cap) of each window, spans lengthened by the margin."""
        return tuple((span + self._margin, cap) for span, cap in limit.windows())

    def _refusal(
        self, stamps: _Stamps, windows: tuple[tuple[float, int], ...], now: float
    ) -> Refusal | None:
        worst: Refusal | None = None
        for span, cap in windows:
            first = bisect_right(stamps.times, now - span, lo=stamps.start)
            inside = len(stamps.times) - first
            if inside < cap:
                continue
            # the oldest (inside - cap + 1) requests must leave this window first
            frees_at = stamps.times[first + inside - cap] + span
            wait = max(frees_at - now, 0.0) / self._scale
            if worst is None or wait > worst.retry_after:
                worst = Refusal(wait, span, cap)
        return worst

    def _maybe_prune(self, now: float) -> None:
        self._since_prune += 1
        if self._since_prune < _PRUNE_EVERY:
            return
        self._since_prune = 0
        horizon = max((span for lim in self._limits.values()
                       for span, _ in self._windows(lim)), default=0.0)
        idle = [k for k, s in self._stamps.items() if not s.times or s.times[-1] <= now - horizon]
        for k in idle:
            del self._stamps[k]

    def headroom(self) -> dict[tuple[Hashable, str], float]:
        """(key, category) -> share of its tightest window still free now, for every
        counter with requests on record (1.0 = nothing used, 0.0 = the next one waits)."""
        out: dict[tuple[Hashable, str], float] = {}
        with self._lock:
            now = self._clock() * self._scale
            for (key, category), stamps in self._stamps.items():
                limit = self.limit(category)
                if limit is None:
                    continue
                free = 1.0
                for span, cap in self._windows(limit):
                    first = bisect_right(stamps.times, now - span, lo=stamps.start)
                    free = min(free, max(0.0, 1.0 - (len(stamps.times) - first) / cap))
                out[(key, category)] = free
        return out

    def reset(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._stamps.clear()
