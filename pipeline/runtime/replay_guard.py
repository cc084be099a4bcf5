"""Skip records this worker process already handled.

After table recovery Faust seeks stream partitions back to their committed offsets; a
record handled just before (on a fresh assignment) then arrives a second time. For the
stages that acknowledge as they go, handling it again would only duplicate outputs. A
record counts as handled only once the loop body that got it has finished (its outputs
handed to the producer), so one cut short (the agent cancelled by a rebalance) is
handled again, never lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pipeline.runtime.faust_fixes import InFlight


class ReplayGuard:
    def __init__(self, in_flight: InFlight | None = None) -> None:
        self._handled: dict[tuple[str, int], int] = {}
        self._in_flight = in_flight

    def fresh(self, message: Any) -> bool:
        """False when this process already handled the record's offset."""
        return bool(message.offset > self._handled.get((message.topic, message.partition), -1))

    def handled(self, message: Any) -> None:
        tp = (message.topic, message.partition)
        if message.offset > self._handled.get(tp, -1):
            self._handled[tp] = message.offset

    async def events(self, stream: Any) -> AsyncIterator[Any]:
        """The stream's events, each offset once; marked handled when the body is done,
        and counted `in_flight` (see `faust_fixes.commit_before_revoke`) meanwhile."""
        async for event in stream.events():
            if self.fresh(event.message):
                if self._in_flight is not None:
                    self._in_flight.enter()
                try:
                    yield event
                    self.handled(event.message)
                finally:
                    # Left just before the loop asks for the next event, which is when
                    # Faust acknowledges this one: no other task runs in between.
                    if self._in_flight is not None:
                        self._in_flight.leave()
