"""The Latarnia poller against a local HTTP server (loopback only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from pipeline.modes.latarnia import LatarniaPoller
from pipeline.modes.messages import LATARNIA_UNREACHABLE
from tests.unit.modes.builders import at

MESSAGE = {"id": "7-start", "eventId": 7, "category": "MAINTENANCE",
           "type": "MAINTENANCE_ANNOUNCEMENT", "title": "Prace", "text": "",
           "start": "2026-03-02T20:00:00+01:00", "end": "2026-03-02T23:00:00+01:00",
           "version": 1, "published": "2026-02-25T10:00:00+01:00"}


class FakeLatarnia:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = [MESSAGE]
        self.down = False

    async def handle(self, request: web.Request) -> web.Response:
        if self.down:
            return web.json_response({"error": "down"}, status=503)
        if request.path.endswith("/status"):
            return web.json_response({"status": "AVAILABLE", "messages": self.messages})
        return web.json_response(self.messages)


async def test_poller_publishes_new_versions_once_and_reports_reachability() -> None:
    fake = FakeLatarnia()
    app = web.Application()
    app.router.add_get("/latarnia/{what}", fake.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        poller = LatarniaPoller(str(server.make_url("/latarnia")), dt.timedelta(0), 5.0)
        now = at("2026-03-01 12:00")
        (first,) = await poller.poll(now)
        assert (first.id, first.version, first.category) == ("7-start", 1, "MAINTENANCE")
        assert await poller.poll(now) == []  # same version: nothing new

        fake.messages = [{**MESSAGE, "version": 2, "end": "2026-03-03T01:00:00+01:00",
                          "published": "2026-03-01T12:30:00+01:00"}]
        (revised,) = await poller.poll(now)
        assert revised.version == 2 and revised.end == "2026-03-03T01:00:00+01:00"

        fake.down = True
        (down,) = await poller.poll(now)
        assert down.category == LATARNIA_UNREACHABLE and down.end is None
        assert "HTTP 503" in down.text
        assert await poller.poll(now) == []

        fake.down = False
        (back,) = await poller.poll(now + dt.timedelta(minutes=3))
        assert back.id == down.id and back.end is not None


async def test_unreachable_only_after_the_threshold() -> None:
    poller = LatarniaPoller("http://127.0.0.1:9/latarnia", dt.timedelta(minutes=2), 1.0)
    now = at("2026-03-01 12:00")
    assert await poller.poll(now) == []  # refused, but not for long enough
    (down,) = await poller.poll(now + dt.timedelta(minutes=2))
    assert down.category == LATARNIA_UNREACHABLE and "failed" in down.text
