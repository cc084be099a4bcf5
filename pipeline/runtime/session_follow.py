"""Every worker's live view of `ksef.sessions` (the session journal of every batch).

The submit stage resumes a batch from the journal and the upo stage skips a batch whose
session was settled already; both must see the steps another worker wrote up to the
moment it died, not a copy read when this worker started. One follower per worker
reads the topic for its whole life and hands each step to its subscribers;
`caught_up()` is the barrier a stage awaits before acting on a batch.
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import ConsumerRecord

from pipeline.runtime import logs
from pipeline.runtime.topic_follower import TopicFollower
from topics.codec import decode
from topics.records import SessionStep

log = logs.get(__name__)

Subscriber = Callable[[SessionStep], None]


class SessionsFollower:
    def __init__(self, follower_factory: Callable[[Callable[..., None]], TopicFollower]
                 ) -> None:
        self._subscribers: list[Subscriber] = []
        self.follower = follower_factory(self._apply)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def caught_up(self) -> None:
        await self.follower.caught_up()

    def _apply(self, record: ConsumerRecord) -> None:  # type: ignore[type-arg]
        if record.value is None:
            return
        try:
            step = decode(SessionStep, record.value)
        except (ValueError, TypeError):
            return  # foreign junk on the journal; the stages skip it too
        for subscriber in self._subscribers:
            subscriber(step)


_follower: SessionsFollower | None = None


def sessions_follower() -> SessionsFollower:
    """This worker's follower (created and registered as an app task on first call)."""
    global _follower
    if _follower is None:
        from pipeline.runtime.app import app, catalog_settings, kafka_settings
        from topics import topic_name
        from topics.catalog import SESSIONS

        name = topic_name(SESSIONS, catalog_settings)
        count = SESSIONS.partition_count(catalog_settings)
        _follower = SessionsFollower(
            lambda apply: TopicFollower(kafka_settings, name, count, apply))
        app.task(_follower.follower.run)
    return _follower
