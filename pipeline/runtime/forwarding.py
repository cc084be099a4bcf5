"""Forward records from one topic to another in a consumer group of the forwarder's own.

A stage sometimes needs every record of a topic that other stages also read under the
app's group (the deadline tracker needs `.sealed`, which pack holds; dedupe needs
`.rejected`, which the mode stage reads). Subscribing under the app's group would split
that topic's partitions among the stages; an own group reads all of them and stalls
nobody. At least once: offsets are committed after the forwarded records are delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pipeline.runtime import logs
from pipeline.runtime.app import app, catalog_settings, kafka_settings
from pipeline.runtime.clients import stream_consumer
from topics import TopicSpec, topic_name

log = logs.get(__name__)

Forwarded = list[tuple[bytes, bytes]]  # (key, value) for the target topic
RESTART_S = 2.0


async def forward_forever(source: TopicSpec, group: str, target: TopicSpec,
                          records: Callable[[list[Any]], Forwarded], *,
                          batch: int = 500) -> None:
    """`forward` that rejoins and resumes from its commit after any failure."""
    while True:
        try:
            await forward(source, group, target, records, batch=batch)
        except asyncio.CancelledError:
            raise
        except Exception:  # the broker went away, say
            log.exception("forwarding failed; restarting", source=source.name,
                          target=target.name)
            await asyncio.sleep(RESTART_S)


async def forward(source: TopicSpec, group: str, target: TopicSpec,
                  records: Callable[[list[Any]], Forwarded], *, batch: int = 500) -> None:
    """Send `records(messages)` of each polled batch to `target`, then commit the batch."""
    consumer = stream_consumer(
        kafka_settings, topic_name(source, catalog_settings), group_id=group,
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=batch)
    target_name = topic_name(target, catalog_settings)
    await consumer.start()
    try:
        while True:
            polled = await consumer.getmany(timeout_ms=1000, max_records=batch)
            messages = [m for part in polled.values() for m in part]
            if not messages:
                continue
            deliveries = [await app.producer.send(target_name, key, value, None, None, None)
                          for key, value in records(messages)]
            await asyncio.gather(*deliveries)
            await consumer.commit()
    finally:
        await consumer.stop()
