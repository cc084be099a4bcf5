"""Outages the pipeline sees for itself, before (or without) any announcement.

`OutageWatch` turns a stream of yes/no observations into episodes: an episode opens once
failures have lasted `threshold` with no success in between, and closes at the next
success. Two uses:
- KSeF, from the API client's `HealthEvent`s (connection errors, 503, other 5xx); the
  submit stage plugs `HealthReporter.observe` in as the clients' observer;
- Latarnia, from the poller's requests.

Each opening / closing becomes an `observed` record on `ksef.announcements` (see
`messages.observation`); the mode-state agent turns it into OBSERVED_OUTAGE / UNKNOWN
and an alert. An episode opened by another process (a restarted worker) is closed too:
the watch is told which episodes `ksef.mode` still shows open.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from pipeline.ksef_api.health import HealthEvent
from pipeline.modes.messages import KSEF_UNREACHABLE, ended, observation
from pipeline.runtime.settings import ObservedOutageSettings
from topics.records import Announcement, ModeState

log = logging.getLogger(__name__)

Publish = Callable[[Announcement], Awaitable[None]]
StateSource = Callable[[], ModeState | None]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class OutageWatch:
    """Failure/success observations of one service -> records opening/closing episodes."""

    category: str
    threshold: dt.timedelta
    failing_since: dt.datetime | None = None
    last_detail: str = ""
    open_episode: Announcement | None = None
    _inherited: list[Announcement] = field(default_factory=list)
    _closed: set[str] = field(default_factory=set)

    def inherit(self, records: Iterable[Announcement]) -> None:
        """Episodes of this category still open in `ksef.mode` (opened by anyone)."""
        own = self.open_episode.id if self.open_episode is not None else None
        self._inherited = [r for r in records if r.category == self.category and r.end is None
                           and r.id != own and r.id not in self._closed]

    def failure(self, at: dt.datetime, detail: str) -> list[Announcement]:
        self.last_detail = detail
        if self.failing_since is None:
            self.failing_since = at
        if self.is_open or at - self.failing_since < self.threshold:
            return []
        self.open_episode = observation(self.category, self.failing_since, at,
                                        f"{detail} (failing since {self.failing_since:%H:%M:%S})")
        return [self.open_episode]

    @property
    def is_open(self) -> bool:
        return self.open_episode is not None or bool(self._inherited)

    def success(self, at: dt.datetime) -> list[Announcement]:
        self.failing_since = None
        out = []
        for episode in [self.open_episode, *self._inherited]:
            if episode is not None:
                out.append(ended(episode, max(at, _start(episode)), at))
                self._closed.add(episode.id)
        self.open_episode = None
        self._inherited = []
        return out


def _start(record: Announcement) -> dt.datetime:
    return dt.datetime.fromisoformat(record.start)


class HealthReporter:
    """A `HealthObserver` for `KsefClients`: publishes self-observed KSeF outages.

    `observe` is called synchronously by the API client inside its request coroutine;
    records are handed to `publish` as tasks on the running loop, in order.
    Threshold: `threshold`, which the submit stage takes from KSEF_OBSERVED_OUTAGE_AFTER_S
    (`ObservedOutageSettings`; default 60 s of failures with no success).
    """

    def __init__(self, publish: Publish, state: StateSource | None = None,
                 threshold: dt.timedelta | None = None) -> None:
        self.watch = OutageWatch(
            KSEF_UNREACHABLE,
            threshold or dt.timedelta(seconds=ObservedOutageSettings().outage_after_s))
        self._publish = publish
        self._state = state
        self._queue: deque[Announcement] = deque()
        self._drainer: asyncio.Task[None] | None = None

    def observe(self, event: HealthEvent) -> None:
        state = self._state() if self._state is not None else None
        if state is not None:
            self.watch.inherit(state.announcements)
        if event.outcome.ksef_up:
            records = self.watch.success(event.at)
        else:
            status = "no answer" if event.status is None else f"HTTP {event.status}"
            records = self.watch.failure(event.at, f"{event.endpoint}: {status}")
        for record in records:
            self._enqueue(record)

    def _enqueue(self, record: Announcement) -> None:
        self._queue.append(record)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._queue:
            record = self._queue[0]
            try:
                await self._publish(record)
            except Exception:  # keep it first in line and try again: order matters
                log.exception("could not publish observed KSeF outage %s", record.id)
                await asyncio.sleep(1.0)
                continue
            self._queue.popleft()
            log.warning("self-observed KSeF %s published: %s",
                        "outage end" if record.end else "outage", record.id)

    async def flush(self) -> None:
        """Wait until every observation so far is published (tests, shutdown)."""
        if self._drainer is not None:
            await self._drainer
