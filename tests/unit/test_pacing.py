"""The pacer gives the event loop a turn every `every` records, and only then."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.runtime.pacing import Pacer


async def test_other_tasks_run_every_nth_record_and_not_in_between() -> None:
    pacer, ran = Pacer(3), []

    async def other() -> None:
        while True:
            ran.append(len(ran))
            await asyncio.sleep(0)

    task = asyncio.ensure_future(other())
    try:
        turns = []
        for _ in range(9):
            before = len(ran)
            await pacer.tick()
            turns.append(len(ran) > before)
        assert turns == [False, False, True] * 3
    finally:
        task.cancel()


def test_every_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0)
