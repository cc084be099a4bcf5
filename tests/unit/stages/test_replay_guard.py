"""Each offset reaches a stage once per process; one cut short is delivered again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from pipeline.runtime.replay_guard import ReplayGuard


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


def test_an_event_counts_in_flight_while_its_body_runs_and_a_revocation_waits_for_it() -> None:
    from pipeline.runtime.faust_fixes import InFlight

    async def run() -> list[str]:
        in_flight = InFlight()
        guard = ReplayGuard(in_flight)
        seen: list[str] = []
        release = asyncio.Event()

        async def agent() -> None:
            async for event in guard.events(FakeStream([(0, 0), (0, 1)])):
                seen.append(f"handling {event.message.offset} ({in_flight.count} in flight)")
                await release.wait()  # e.g. waiting for the producer

        async def revocation() -> None:
            await asyncio.sleep(0)  # the agent has its first event by now
            assert await in_flight.idle(0.05) is False  # still handling: not idle
            release.set()
            assert await in_flight.idle(1.0) is True
            seen.append("idle")

        await asyncio.gather(agent(), revocation())
        assert in_flight.count == 0
        return seen

    assert asyncio.run(run()) == ["handling 0 (1 in flight)", "handling 1 (1 in flight)",
                                  "idle"]
