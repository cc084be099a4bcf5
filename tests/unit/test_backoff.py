import asyncio

import pytest

from pipeline.runtime.backoff import Backoff


def test_pauses_double_up_to_the_cap_and_reset_starts_over() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    async def run() -> None:
        b = Backoff(1.0, 5.0, sleep=sleep)
        for _ in range(5):
            await b.wait()
        assert b.next_s == 5.0
        b.reset()
        await b.wait()

    asyncio.run(run())
    assert slept == [1.0, 2.0, 4.0, 5.0, 5.0, 1.0]


@pytest.mark.parametrize(("first", "cap"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)])
def test_refuses_a_first_pause_outside_0_and_the_cap(first: float, cap: float) -> None:
    with pytest.raises(ValueError, match="first_s"):
        Backoff(first, cap)
