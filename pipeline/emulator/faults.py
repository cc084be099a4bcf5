"""Operator-controlled faults: outages, latency, forced processing errors.

Kept in memory on purpose: a restarted emulator comes back healthy.
"""

from __future__ import annotations

import fnmatch
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

DOWN_MODES = ("503", "refuse", "429")  # 429: a rate-limit storm (Retry-After 1 s)
INVOICE_SCOPE = "invoice"
SESSION_SCOPE = "session"


@dataclass
class Faults:
    down: str | None = None  # None, "503" or "refuse"
    latency_ms: int = 0
    latarnia_down: bool = False
    _invoice_failures: deque[int] = field(default_factory=deque)
    _session_failures: deque[int] = field(default_factory=deque)
    _lost_responses: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_down(self, mode: str | None) -> None:
        if mode is not None and mode not in DOWN_MODES:
            raise ValueError(f"down mode must be one of {DOWN_MODES}, not {mode!r}")
        self.down = mode

    def fail_next(self, scope: str, code: int, count: int = 1) -> None:
        """Make the next `count` invoices (or batch sessions) end with status `code`."""
        if count < 1:
            raise ValueError("count must be at least 1")
        queue = self._queue(scope)
        with self._lock:
            queue.extend([code] * count)

    def take(self, scope: str) -> int | None:
        queue = self._queue(scope)
        with self._lock:
            return queue.popleft() if queue else None

    def lose_responses(self, path_pattern: str, count: int = 1) -> None:
        """Carry out the next `count` requests whose path matches the glob, then reset
        the connection instead of answering: KSeF acted, the caller never heard."""
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._lost_responses[path_pattern] = self._lost_responses.get(path_pattern, 0) + count

    def take_lost_response(self, path: str) -> bool:
        with self._lock:
            for pattern, left in self._lost_responses.items():
                if fnmatch.fnmatchcase(path, pattern):
                    if left > 1:
                        self._lost_responses[pattern] = left - 1
                    else:
                        del self._lost_responses[pattern]
                    return True
        return False

    def _queue(self, scope: str) -> deque[int]:
        if scope == INVOICE_SCOPE:
            return self._invoice_failures
        if scope == SESSION_SCOPE:
            return self._session_failures
        raise ValueError(f"scope must be {INVOICE_SCOPE!r} or {SESSION_SCOPE!r}, not {scope!r}")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "down": self.down,
                "latencyMs": self.latency_ms,
                "latarniaDown": self.latarnia_down,
                "pendingInvoiceFailures": list(self._invoice_failures),
                "pendingSessionFailures": list(self._session_failures),
                "lostResponses": dict(self._lost_responses),
            }

    def reset(self) -> None:
        with self._lock:
            self.down = None
            self.latency_ms = 0
            self.latarnia_down = False
            self._invoice_failures.clear()
            self._session_failures.clear()
            self._lost_responses.clear()
