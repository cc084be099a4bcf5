"""Every worker's view of `ksef.mode`, whatever partitions it was assigned.

`ksef.mode` has one partition, so a Faust agent would see it on one worker only. The
follower is a group-less consumer started as an app task: it reads the topic from the
beginning, reports `ready` once it has caught up with the end, and then calls its
subscribers with every new state. Stages use it like this:

    from pipeline.modes.follow import mode_follower
    follower = mode_follower()            # at import time, before the worker starts
    follower.subscribe(on_state)          # on_state(ModeState) -> None | Awaitable[None]
    follower.state                        # latest ModeState, None before any was published
    await follower.wait_ready()
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition

from pipeline.runtime import logs
from pipeline.runtime.clients import stream_consumer
from pipeline.runtime.settings import KafkaSettings
from pipeline.runtime.topic_follower import follow_forever
from topics.codec import decode
from topics.records import ModeState

log = logs.get(__name__)

Subscriber = Callable[[ModeState], Awaitable[None] | None]


class ModeFollower:
    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.state: ModeState | None = None
        self._ready: asyncio.Event | None = None
        self._subscribers: list[Subscriber] = []

    @property
    def ready(self) -> asyncio.Event:
        if self._ready is None:
            self._ready = asyncio.Event()
        return self._ready

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def wait_ready(self) -> None:
        await self.ready.wait()

    async def _notify(self, state: ModeState) -> None:
        for subscriber in self._subscribers:
            try:
                result = subscriber(state)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one subscriber's bug must not starve the others
                log.exception("ksef.mode subscriber failed")

    async def run(self) -> None:
        """Follow the topic until cancelled; reconnects after errors."""
        await follow_forever(self._follow, self.topic)

    async def _follow(self) -> None:
        consumer = stream_consumer(self.kafka, group_id=None, enable_auto_commit=False,
                                   auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            latest: ModeState | None = None
            caught_up = end == 0
            if caught_up:
                await self._deliver(None)
            while True:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for message in batch.get(tp, []):
                    if message.value is None:
                        continue
                    try:
                        latest = decode(ModeState, message.value)
                    except (ValueError, TypeError) as exc:
                        log.error("unreadable ksef.mode record skipped", offset=message.offset,
                                  error=str(exc))
                if not caught_up and await consumer.position(tp) >= end:
                    caught_up = True
                    await self._deliver(latest)
                elif caught_up and latest is not None and latest is not self.state:
                    await self._deliver(latest)
        finally:
            await consumer.stop()

    async def _deliver(self, state: ModeState | None) -> None:
        if state is not None:
            self.state = state
            await self._notify(state)
        if not self.ready.is_set():
            log.info("ksef.mode followed", state=state.state if state else None)
            self.ready.set()


_follower: ModeFollower | None = None


def mode_follower() -> ModeFollower:
    """This worker's follower (created and registered as an app task on first call)."""
    global _follower
    if _follower is None:
        from pipeline.runtime.app import app, catalog_settings, kafka_settings
        from topics import topic_name
        from topics.catalog import MODE

        _follower = ModeFollower(kafka_settings, topic_name(MODE, catalog_settings))
        app.task(_follower.run)
    return _follower
