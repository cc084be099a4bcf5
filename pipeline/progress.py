"""A dependency-free progress bar for long CLI work (stderr, redrawn at most 10x/s)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int | None, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.started = time.monotonic()
        self._stream = stream or sys.stderr
        self._drawn = 0.0
        self._tty = self._stream.isatty()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._drawn >= (0.1 if self._tty else 5.0):
            self._drawn = now
            self._draw(final=False)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _draw(self, final: bool) -> None:
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 30)
            text = (f"{self.label} [{bar:<30}] {self.done}/{self.total} "
                    f"{frac:4.0%} {self.rate():,.0f}/s")
        else:
            text = f"{self.label} {self.done} {self.rate():,.0f}/s"
        end = "\n" if final or not self._tty else ""
        self._stream.write(("\r" if self._tty else "") + text + end)
        self._stream.flush()

    def close(self) -> None:
        self._draw(final=True)
