"""Reading Latarnia KSeF (`GET {url}/status`, `GET {url}/messages`) and turning what it
says into `ksef.announcements` records, only for versions not yet sent.

A Latarnia that does not answer (connection error, timeout, non-200, not JSON) is an
observation, not a KSeF failure: `OutageWatch` opens a LATARNIA_UNREACHABLE episode once
it has lasted KSEF_LATARNIA_UNREACHABLE_AFTER_S, and closes it at the next good poll.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

import aiohttp

from pipeline.ksef.announcements import AnnouncementError
from pipeline.modes.messages import LATARNIA_UNREACHABLE, from_latarnia
from pipeline.modes.observed import OutageWatch
from topics.records import Announcement

log = logging.getLogger(__name__)


class LatarniaUnavailable(RuntimeError):
    """Latarnia gave no usable answer; the text says which request and why."""


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    try:
        async with session.get(url) as response:
            if response.status != 200:
                raise LatarniaUnavailable(f"GET {url} answered HTTP {response.status}")
            return await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise LatarniaUnavailable(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc


async def fetch(session: aiohttp.ClientSession, base_url: str) -> list[dict[str, Any]]:
    """Every message Latarnia shows on /messages and /status (raw JSON objects)."""
    base = base_url.rstrip("/")
    messages = await _get_json(session, f"{base}/messages")
    status = await _get_json(session, f"{base}/status")
    if isinstance(messages, dict) and "messages" in messages:
        messages = messages["messages"]
    if not isinstance(messages, list) or not isinstance(status, dict):
        raise LatarniaUnavailable(f"{base}: /messages or /status is not the documented shape")
    raw = [m for m in messages if isinstance(m, dict)]
    raw += [m for m in status.get("messages") or [] if isinstance(m, dict)]
    return raw


class LatarniaPoller:
    """What one poll should publish: new message versions and reachability changes."""

    def __init__(self, url: str, unreachable_after: dt.timedelta,
                 timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.watch = OutageWatch(LATARNIA_UNREACHABLE, unreachable_after)
        self._sent: dict[str, tuple[int, str]] = {}

    def _new_versions(self, raw: Iterable[dict[str, Any]]) -> list[Announcement]:
        out = []
        for item in raw:
            try:
                record = from_latarnia(item)
            except AnnouncementError as exc:
                log.warning("Latarnia message skipped: %s", exc)
                continue
            mark = (record.version, record.published)
            if self._sent.get(record.id) == mark:
                continue
            self._sent[record.id] = mark
            out.append(record)
        return out

    async def poll(self, now: dt.datetime, open_episodes: Iterable[Announcement] = (),
                   session: aiohttp.ClientSession | None = None) -> list[Announcement]:
        self.watch.inherit(open_episodes)
        try:
            if session is None:
                async with aiohttp.ClientSession(timeout=self.timeout) as own:
                    raw = await fetch(own, self.url)
            else:
                raw = await fetch(session, self.url)
        except LatarniaUnavailable as exc:
            log.warning("Latarnia poll failed: %s", exc)
            return self.watch.failure(now, str(exc))
        return self.watch.success(now) + self._new_versions(raw)
