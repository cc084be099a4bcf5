"""Give the event loop a turn every so many records produced in one go.

Handing a record to aiokafka's producer awaits nothing until a 1 MB batch is full, so
a loop producing thousands of records (a settled session's outcomes, a batch's
rejections) kept the producer's sender from running until it ended: every record sat
in the batches at once, then went out in one request built as one more copy of them,
7 MB for a 10,000-invoice session. With a turn every `every` records the sender sends
what lingered meanwhile, a few hundred records at a time.
"""

from __future__ import annotations

import asyncio


class Pacer:
    def __init__(self, every: int) -> None:
        if every < 1:
            raise ValueError("a pacer needs every >= 1")
        self.every = every
        self._count = 0

    async def tick(self) -> None:
        """Count one record; every `every`-th yields to the event loop."""
        self._count += 1
        if self._count >= self.every:
            self._count = 0
            await asyncio.sleep(0)
