"""Counts over a sliding window (the last minute, the last hour) for the status page,
which shows what happens now rather than totals since the worker started."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Hashable


class RecentCounts:
    """Per-key counts in `window_s`, kept in slots of `slot_s` seconds (memory: one
    Counter per slot, at most window_s / slot_s of them)."""

    def __init__(self, window_s: float, slot_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if slot_s <= 0 or window_s < slot_s:
            raise ValueError("need 0 < slot_s <= window_s")
        self.window_s = window_s
        self.slot_s = slot_s
        self._clock = clock
        self._slots: deque[tuple[int, Counter[Hashable]]] = deque()

    def _expire(self, slot: int) -> None:
        oldest = slot - int(self.window_s // self.slot_s) + 1
        while self._slots and self._slots[0][0] < oldest:
            self._slots.popleft()

    def add(self, key: Hashable, n: int = 1) -> None:
        slot = int(self._clock() // self.slot_s)
        self._expire(slot)
        if not self._slots or self._slots[-1][0] != slot:
            self._slots.append((slot, Counter()))
        self._slots[-1][1][key] += n

    def totals(self) -> Counter[Hashable]:
        """Counts per key over the window ending now."""
        self._expire(int(self._clock() // self.slot_s))
        out: Counter[Hashable] = Counter()
        for _, counts in self._slots:
            out.update(counts)
        return out

    def per_second(self) -> dict[Hashable, float]:
        """Average rate per key over the window."""
        return {k: v / self.window_s for k, v in self.totals().items()}
