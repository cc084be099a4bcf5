"""Repeated deliveries of one piece of work, acknowledged together once it is settled.

Faust re-reads a few records around a rebalance, so a manifest or a `closed` step can
arrive again while the first delivery is still being worked on. The repeat must not
start the work a second time, nor be acknowledged before the work is done.
"""

from __future__ import annotations

from typing import Any


class Deliveries:
    """Events per work key (a batch id): the first starts the work, repeats wait."""

    def __init__(self) -> None:
        self._events: dict[str, list[Any]] = {}

    def first(self, key: str, event: Any) -> bool:
        """Record a delivery; True when it is the first of work not yet settled."""
        known = self._events.get(key)
        if known is not None:
            known.append(event)
            return False
        self._events[key] = [event]
        return True

    def settled(self, key: str) -> list[Any]:
        """Forget settled (or abandoned) work; every delivery of it, to acknowledge."""
        return self._events.pop(key, [])


def held_for_ack(event: Any) -> Any:
    """The event with its key, value and headers dropped, kept only to be acknowledged
    later: a held manifest or sealed invoice then costs a few hundred bytes, not the
    record (a 3,333-invoice manifest is 1.3 MB)."""
    message = event.message
    message.value = message.key = message.headers = None
    event.value = event.key = event.headers = None
    return event
