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
                               "at": "2026-03-02T15:00+01:00", "allow_end": true}
    GET  /ksef/announcements  every message known (latest versions)
(`messages.from_request` documents the body; `ksef-pipeline announce` does the same
from a shell.) The POST needs `Authorization: Bearer <token>` (KSEF_OPERATOR_TOKEN_FILE)
and `Content-Type: application/json`; backdating a start or ending a window needs an
explicit flag, and every accepted change is audited on `ksef.alerts` (see `operator`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import aiohttp
from faust.web import Request, Response, View

from pipeline.bearer import Refusal
from pipeline.clock import now_utc
from pipeline.ksef.announcements import AnnouncementError
from pipeline.ksef_api.link import KsefSettings
from pipeline.modes.follow import mode_follower
from pipeline.modes.latarnia import LatarniaPoller
from pipeline.modes.messages import from_request, latest_by_id
from pipeline.modes.operator import (
    assess,
    audit_alert,
    flags,
    gate,
    operator_tokens,
    refusal,
    signed,
)
from pipeline.modes.publish import publish_alert, publish_announcement
from pipeline.runtime import logs
from pipeline.runtime.app import app, close_at_stop
from pipeline.runtime.settings import LatarniaSettings

log = logs.get(__name__)

latarnia_settings = LatarniaSettings.from_env()
POLL_S = latarnia_settings.poll_s
UNREACHABLE_AFTER = dt.timedelta(seconds=latarnia_settings.unreachable_after_s)


def latarnia_url() -> str:
    return latarnia_settings.url or KsefSettings.from_env().environment().latarnia_url


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


async def _close_session() -> None:
    session = _session.pop("s", None)
    if session is not None:
        await session.close()


if POLL_S > 0:
    app.timer(POLL_S, on_leader=True, name="latarnia-poller")(poll_latarnia)
    close_at_stop(_close_session)

_tokens = operator_tokens()
if isinstance(_tokens, Refusal):  # said once at start; every POST answers it too
    log.warning(_tokens.message)


@app.page("/ksef/announcements")
class AnnouncementsView(View):
    """Operators post outages here; GET lists every message known."""

    async def get(self, request: Request) -> Response:
        state = follower.state
        known = state.announcements if state else []
        return self.json([dataclasses.asdict(r) for r in known])

    async def post(self, request: Request) -> Response:
        caller = gate(request.headers, request.headers.get("Content-Type"))
        if isinstance(caller, Refusal):
            log.warning("operator request refused", status=caller.status,
                        remote=getattr(request, "remote", None), reason=caller.message)
            return _refused(self, caller)
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return self.json({"error": "the body must be JSON"}, status=400)
        if not isinstance(body, dict):
            return self.json({"error": "the request body must be a JSON object"}, status=400)
        allowed = flags(body)
        if isinstance(allowed, Refusal):
            return _refused(self, allowed)
        state = follower.state
        known = latest_by_id(state.announcements if state else [])
        now = now_utc()
        try:
            record = from_request(body, known, now)
        except AnnouncementError as exc:
            return self.json({"error": str(exc)}, status=400)
        change = assess(record, known.get(record.id), now)
        refused = refusal(record, change, allowed, now)
        if refused is not None:
            log.warning("operator announcement refused", id=record.id, by=caller.name,
                        reason=refused.message)
            return _refused(self, refused)
        record = signed(record, caller)
        audit = audit_alert(record, caller, change, allowed, now,
                            getattr(request, "remote", None))  # aiohttp: the client address
        await publish_alert(audit)  # the audit record goes first: no change without it
        await publish_announcement(record)
        log.info("operator announcement published", id=record.id, version=record.version,
                 by=caller.name, token=caller.fingerprint, backdated=change.backdated,
                 changes_end=change.changes_end)
        return self.json({**dataclasses.asdict(record), "audit": audit.details}, status=201)


def _refused(view: View, refused: Refusal) -> Response:
    return view.json({"error": refused.message}, status=refused.status,
                     headers=refused.headers)
