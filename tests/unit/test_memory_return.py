"""The worker's timer that gives freed heap memory back (glibc's malloc_trim)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pipeline.runtime.memory_return import malloc_trim, return_freed_memory


class App:
    def __init__(self) -> None:
        self.timers: list[tuple[float, str, Callable[[], Awaitable[None]]]] = []

    def timer(self, interval: float, name: str) -> Callable[[Any], Any]:
        def register(fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
            self.timers.append((interval, name, fn))
            return fn
        return register


async def test_the_timer_trims_in_a_thread_at_its_interval() -> None:
    app, calls = App(), []
    assert return_freed_memory(app, 0.5, trim=lambda: calls.append(1) or 1)
    [(interval, name, give_back)] = app.timers
    assert (interval, name) == (0.5, "memory-return")
    await give_back()
    await give_back()
    assert calls == [1, 1]


def test_zero_turns_it_off() -> None:
    app = App()
    assert not return_freed_memory(app, 0, trim=lambda: 1)
    assert app.timers == []


def test_this_glibc_has_malloc_trim_and_it_runs() -> None:
    trim = malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)  # 1: memory was released, 0: there was none to release
