"""Operator controls under `/_emulator` (what `ksef-pipeline emulator-ctl` calls) and the
Latarnia feed under `/latarnia`. Neither is affected by an emulated API outage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from aiohttp import web

from pipeline.emulator.errors import VALIDATION, bad_request
from pipeline.emulator.faults import INVOICE_SCOPE
from pipeline.emulator.latarnia import message_json
from pipeline.emulator.request_helpers import emulator, field, read_json
from pipeline.emulator.routes_auth import issue_ksef_token
from pipeline.emulator.timefmt import parse
from pipeline.ksef.numbers import nip_is_valid


def _ok(request: web.Request) -> web.Response:
    emu = emulator(request)
    return web.json_response({"baseUrl": emu.base_url, "apiUrl": emu.base_url + "/v2",
                              "latarniaUrl": emu.base_url + "/latarnia",
                              "limits": emu.config.limits, "timeScale": emu.config.time_scale,
                              "faults": emu.faults.snapshot()})


async def _body(request: web.Request) -> dict[str, Any]:
    return await read_json(request) if request.can_read_body else {}


def _when(body: dict[str, Any], name: str) -> Any:
    text = field(body, name, str, required=False)
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise bad_request(VALIDATION, f"'{name}' is not an ISO 8601 date-time") from exc


async def info(request: web.Request) -> web.Response:
    return _ok(request)


async def ksef_token(request: web.Request) -> web.Response:
    """A KSeF token for a NIP (the subject is created when missing)."""
    body = await read_json(request)
    nip = field(body, "nip", str)
    if not nip_is_valid(nip):
        raise bad_request(VALIDATION, f"{nip!r} is not a valid NIP")
    description = field(body, "description", str, required=False) or "emulator token"
    return web.json_response(issue_ksef_token(emulator(request), nip, description), status=201)


async def down(request: web.Request) -> web.Response:
    mode = str((await _body(request)).get("mode", "503"))
    try:
        emulator(request).faults.set_down(mode)
    except ValueError as exc:
        raise bad_request(VALIDATION, str(exc)) from exc
    return _ok(request)


async def up(request: web.Request) -> web.Response:
    emulator(request).faults.set_down(None)
    return _ok(request)


async def latency(request: web.Request) -> web.Response:
    value = field(await read_json(request), "ms", int)
    if value < 0:
        raise bad_request(VALIDATION, "latency must not be negative")
    emulator(request).faults.latency_ms = value
    return _ok(request)


async def fail_next(request: web.Request) -> web.Response:
    body = await read_json(request)
    code = field(body, "code", int)
    count = field(body, "count", int, required=False) or 1
    scope = field(body, "scope", str, required=False) or INVOICE_SCOPE
    try:
        emulator(request).faults.fail_next(scope, code, count)
    except ValueError as exc:
        raise bad_request(VALIDATION, str(exc)) from exc
    return _ok(request)


async def lose_response(request: web.Request) -> web.Response:
    body = await read_json(request)
    path = field(body, "path", str)
    count = field(body, "count", int, required=False) or 1
    try:
        emulator(request).faults.lose_responses(path, count)
    except ValueError as exc:
        raise bad_request(VALIDATION, str(exc)) from exc
    return _ok(request)


async def reset(request: web.Request) -> web.Response:
    emu = emulator(request)
    emu.faults.reset()
    emu.limiter.reset()
    emu.clock_offset = dt.timedelta(0)
    return _ok(request)


async def sweep(request: web.Request) -> web.Response:
    """Apply session timeouts now instead of at the next periodic sweep."""
    processor = emulator(request).processor
    assert processor is not None
    processor.sweep()
    return _ok(request)


async def announce(request: web.Request) -> web.Response:
    body = await read_json(request)
    category = field(body, "category", str, required=False) or "FAILURE"
    try:
        row = emulator(request).latarnia.announce(
            category, start=_when(body, "start"), end=_when(body, "end"),
            title=field(body, "title", str, required=False),
            text=field(body, "text", str, required=False),
            message_id=field(body, "id", str, required=False))
    except (ValueError, KeyError) as exc:
        raise bad_request(VALIDATION, str(exc)) from exc
    return web.json_response(message_json(row), status=201)


async def end(request: web.Request) -> web.Response:
    body = await read_json(request)
    ref = str(field(body, "event", (str, int)))
    try:
        rows = emulator(request).latarnia.end(ref, _when(body, "at"))
    except KeyError as exc:
        raise bad_request(VALIDATION, str(exc)) from exc
    return web.json_response([message_json(r) for r in rows], status=201)


async def latarnia_down(request: web.Request) -> web.Response:
    emulator(request).faults.latarnia_down = True
    return _ok(request)


async def latarnia_up(request: web.Request) -> web.Response:
    emulator(request).faults.latarnia_down = False
    return _ok(request)


async def latarnia_status(request: web.Request) -> web.Response:
    emu = emulator(request)
    return _latarnia(request, emu.latarnia.status)


async def latarnia_messages(request: web.Request) -> web.Response:
    emu = emulator(request)
    return _latarnia(request, emu.latarnia.messages)


def _latarnia(request: web.Request, answer: Callable[[], object]) -> web.Response:
    if emulator(request).faults.latarnia_down:
        return web.json_response({"error": "Latarnia is unavailable (emulated)"}, status=503)
    return web.json_response(answer())


def routes() -> list[web.RouteDef]:
    admin = "/_emulator"
    return [
        web.get(admin + "/info", info),
        web.post(admin + "/ksef-tokens", ksef_token),
        web.post(admin + "/down", down),
        web.post(admin + "/up", up),
        web.post(admin + "/latency", latency),
        web.post(admin + "/fail-next", fail_next),
        web.post(admin + "/lose-response", lose_response),
        web.post(admin + "/reset", reset),
        web.post(admin + "/sweep", sweep),
        web.post(admin + "/latarnia/announce", announce),
        web.post(admin + "/latarnia/end", end),
        web.post(admin + "/latarnia/down", latarnia_down),
        web.post(admin + "/latarnia/up", latarnia_up),
        web.get("/latarnia/status", latarnia_status),
        web.get("/latarnia/messages", latarnia_messages),
    ]
