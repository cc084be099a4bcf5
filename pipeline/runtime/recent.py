"""A mapping that keeps only its most recently written entries.

For memos a worker builds for its whole life from topics it follows (sessions, hash
comparisons): unbounded, they grow with every session ever sent, and a worker started
on a topic with 400 days of retention would hold every invoice hash of those days.
A miss must only cost a slower path (a download, a lookup), never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(MutableMapping[K, V]):
    """Up to `capacity` entries; writing one more forgets the one written longest ago."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: dict[K, V] = {}

    def __setitem__(self, key: K, value: V) -> None:
        self._items.pop(key, None)  # written again: the newest now
        self._items[key] = value
        while len(self._items) > self.capacity:
            del self._items[next(iter(self._items))]

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __delitem__(self, key: K) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
