"""Operators' releases of credential-held invoices, as every submit worker sees them.

`ksef.control` has one partition and is compacted by `release:<NIP>`: each worker
follows all of it from the beginning (group-less), so whichever worker holds a context's
batches, and any worker started later, applies the latest request of that context.
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import ConsumerRecord

from pipeline.runtime import logs
from pipeline.runtime.topic_follower import TopicFollower
from topics.codec import decode
from topics.records import HeldRelease

log = logs.get(__name__)

KEY_PREFIX = "release:"


def release_key(seller_nip: str) -> str:
    return f"{KEY_PREFIX}{seller_nip}"


class ReleaseBook:
    """The latest release per context; `on_release` hears of each new one."""

    def __init__(self, on_release: Callable[[HeldRelease], None] | None = None) -> None:
        self._latest: dict[str, HeldRelease] = {}
        self.on_release = on_release

    def get(self, seller_nip: str) -> HeldRelease | None:
        return self._latest.get(seller_nip)

    def apply_value(self, value: bytes | None) -> HeldRelease | None:
        if value is None:
            return None
        try:
            release = decode(HeldRelease, value)
        except (ValueError, TypeError):
            log.error("unreadable ksef.control record ignored")
            return None
        known = self._latest.get(release.seller_nip)
        if known is not None and known.requested_at >= release.requested_at:
            return None
        self._latest[release.seller_nip] = release
        if self.on_release is not None:
            self.on_release(release)
        return release

    def apply(self, record: ConsumerRecord) -> None:  # type: ignore[type-arg]
        self.apply_value(record.value)


_book: ReleaseBook | None = None


def release_book() -> ReleaseBook:
    """This worker's book (its follower registered as an app task on first call)."""
    global _book
    if _book is None:
        from pipeline.runtime.app import app, catalog_settings, kafka_settings
        from topics import topic_name
        from topics.catalog import CONTROL

        _book = ReleaseBook()
        follower = TopicFollower(kafka_settings, topic_name(CONTROL, catalog_settings),
                                 CONTROL.partition_count(catalog_settings), _book.apply)
        app.task(follower.run)
    return _book
