"""Each offset reaches a stage once per process; one cut short is delivered again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from pipeline.stages.replay_guard import ReplayGuard


class FakeStream:
    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        self.offsets = offsets

    async def events(self) -> Any:
        for partition, offset in self.offsets:
            yield SimpleNamespace(message=SimpleNamespace(
                topic="t", partition=partition, offset=offset))


def _delivered(guard: ReplayGuard, offsets: list[tuple[int, int]],
               stop_at: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    async def run() -> list[tuple[int, int]]:
        got = []
        events = guard.events(FakeStream(offsets))
        async for event in events:
            where = (event.message.partition, event.message.offset)
            if where == stop_at:  # the body is cut short before it finishes
                break
            got.append(where)
        await events.aclose()
        return got

    return asyncio.run(run())


def test_offsets_seen_again_after_a_seek_back_are_skipped() -> None:
    guard = ReplayGuard()
    got = _delivered(guard, [(0, 0), (0, 1), (1, 0), (0, 0), (0, 1), (0, 2), (1, 0)])
    assert got == [(0, 0), (0, 1), (1, 0), (0, 2)]


def test_a_record_cut_short_is_delivered_again() -> None:
    guard = ReplayGuard()
    assert _delivered(guard, [(0, 0), (0, 1)], stop_at=(0, 1)) == [(0, 0)]
    assert _delivered(guard, [(0, 0), (0, 1), (0, 2)]) == [(0, 1), (0, 2)]
