"""Put records on the mode-state topics from inside a worker (Faust producer).

Import-safe for any stage: it declares topic handles, no agents or timers.
"""

from __future__ import annotations

from pipeline.runtime.app import topic
from topics.catalog import ALERTS, ANNOUNCEMENTS
from topics.codec import encode
from topics.records import Alert, Announcement

announcements_topic = topic(ANNOUNCEMENTS)
alerts_topic = topic(ALERTS)


async def publish_announcement(record: Announcement) -> None:
    """A Latarnia / operator / observed record onto `ksef.announcements` (key = id)."""
    await announcements_topic.send(key=record.id.encode(), value=encode(record))


async def publish_alert(alert: Alert) -> None:
    await alerts_topic.send(key=alert.alert_id.encode(), value=encode(alert))
