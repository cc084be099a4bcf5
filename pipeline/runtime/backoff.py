"""The one way a stage waits between attempts of something that failed for now (KSeF
down, a session not readable yet): doubling pauses from `first_s` up to `cap_s`, back to
the first after a success. The KSeF client's own retry policy (`ksef_api.retry`) is the
same idea inside one request; this is for the loops around whole steps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Backoff:
    def __init__(self, first_s: float = 1.0, cap_s: float = 60.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not 0 < first_s <= cap_s:
            raise ValueError(f"need 0 < first_s <= cap_s, got {first_s} and {cap_s}")
        self.first_s = first_s
        self.cap_s = cap_s
        self.next_s = first_s
        self._sleep = sleep

    async def wait(self) -> None:
        """Pause for `next_s`, then double it (up to the cap)."""
        pause = self.next_s
        self.next_s = min(pause * 2, self.cap_s)
        await self._sleep(pause)

    def reset(self) -> None:
        """After a success: the next failure waits `first_s` again."""
        self.next_s = self.first_s
