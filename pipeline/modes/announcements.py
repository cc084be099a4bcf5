"""Feeding `ksef.announcements`: the Latarnia poller and the operator HTTP endpoint.

Latarnia poller: a leader-only timer (one poller per consumer group) reading
`{KSEF_LATARNIA_URL}/messages` and `/status` every KSEF_LATARNIA_POLL_S seconds
(default 60; 0 turns polling off). The URL defaults to the Latarnia of the configured
KSeF environment (KSEF_ENV / KSEF_API_URL: the emulator serves it under `/latarnia`).
Latarnia not answering for KSEF_LATARNIA_UNREACHABLE_AFTER_S (default two intervals)
publishes a LATARNIA_UNREACHABLE observation: state UNKNOWN plus an alert.

Operator endpoint on the worker's web port:
    POST /ksef/announcements  {"kind": "failure", "start": "2026-03-02T08:00+01:00"}
    POST /ksef/announcements  {"kind": "end", "id": "op-failure-20260302T0700Z",
                               "at": "2026-03-02T15:00+01:00"}
    GET  /ksef/announcements  every message known (latest versions)
(`messages.from_request` documents the body; `ksef-pipeline announce` does the same
from a shell.)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import aiohttp
from faust.web import Request, Response, View

from pipeline import logs
from pipeline.app import app
from pipeline.clock import now_utc
from pipeline.ksef.announcements import AnnouncementError
from pipeline.ksef_api.link import KsefSettings
from pipeline.modes.follow import mode_follower
from pipeline.modes.latarnia import LatarniaPoller
from pipeline.modes.messages import from_request, latest_by_id
from pipeline.modes.publish import publish_announcement

log = logs.get(__name__)

POLL_S = float(os.environ.get("KSEF_LATARNIA_POLL_S", "60"))
UNREACHABLE_AFTER = dt.timedelta(
    seconds=float(os.environ.get("KSEF_LATARNIA_UNREACHABLE_AFTER_S", str(2 * POLL_S))))


def latarnia_url() -> str:
    explicit = os.environ.get("KSEF_LATARNIA_URL")
    return explicit or KsefSettings.from_env().environment().latarnia_url


follower = mode_follower()
poller = LatarniaPoller(latarnia_url(), UNREACHABLE_AFTER, timeout_s=min(10.0, max(POLL_S, 1.0)))
_session: dict[str, aiohttp.ClientSession] = {}


async def poll_latarnia() -> None:
    """One poll: publish new message versions and reachability changes."""
    if not follower.ready.is_set():
        return  # open episodes are unknown until ksef.mode is read
    session = _session.get("s")
    if session is None or session.closed:
        session = _session["s"] = aiohttp.ClientSession(timeout=poller.timeout)
    state = follower.state
    records = await poller.poll(now_utc(), state.announcements if state else (), session)
    for record in records:
        await publish_announcement(record)
        log.info("Latarnia record published", id=record.id, version=record.version,
                 source=record.source)


if POLL_S > 0:
    app.timer(POLL_S, on_leader=True, name="latarnia-poller")(poll_latarnia)


@app.page("/ksef/announcements")
class AnnouncementsView(View):
    """Operators post outages here; GET lists every message known."""

    async def get(self, request: Request) -> Response:
        state = follower.state
        known = state.announcements if state else []
        return self.json([dataclasses.asdict(r) for r in known])

    async def post(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return self.json({"error": "the body must be JSON"}, status=400)
        state = follower.state
        known = latest_by_id(state.announcements if state else [])
        try:
            record = from_request(body, known, now_utc())
        except AnnouncementError as exc:
            return self.json({"error": str(exc)}, status=400)
        await publish_announcement(record)
        log.info("operator announcement published", id=record.id, version=record.version)
        return self.json(dataclasses.asdict(record), status=201)
