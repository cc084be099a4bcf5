"""What wraps every request: the admin token (`/_emulator/*`), emulated outages and
latency, rate limits, error shapes."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

from pipeline.bearer import Refusal, TokenEntry, authorize, require_json
from pipeline.emulator.errors import ApiError, render, service_unavailable, too_many_requests
from pipeline.emulator.request_helpers import client_ip, emulator
from pipeline.ksef.limits import classify, is_public

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OUTAGE_PREFIXES = ("/v2/", "/upload/", "/_blob/")
_WINDOW_NAMES = {1.0: "sekundę", 60.0: "minutę", 3600.0: "godzinę"}
ADMIN_PREFIX = "/_emulator"


def _reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP reset, as a host that refuses the API would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@web.middleware
async def emulated_ksef(request: web.Request, handler: Handler) -> web.StreamResponse:
    emu = emulator(request)
    path = request.path
    if path.startswith(_OUTAGE_PREFIXES):
        if emu.faults.down == "503":
            return service_unavailable(request)
        if emu.faults.down == "refuse":
            _reset_connection(request)
            raise asyncio.CancelledError
        if emu.faults.down == "429" and path.startswith("/v2/"):
            return too_many_requests(request, 1.0, "Przekroczono limit żądań (burza 429). "
                                     "Spróbuj ponownie po 1 sekundach.")
        if emu.faults.latency_ms:
            await asyncio.sleep(emu.faults.latency_ms / 1000)
    if path.startswith("/v2/"):
        category = classify(request.method, path)
        context = None if is_public(category) else emu.minter.peek_context(
            request.headers.get("Authorization"))
        refusal = emu.limiter.check((context, client_ip(request)), category, record=True)
        if refusal is not None:
            per = _WINDOW_NAMES.get(refusal.window, f"{refusal.window:g} s")
            message = (f"Przekroczono limit {refusal.cap} żądań na {per}. Spróbuj ponownie po "
                       f"{max(1, round(refusal.retry_after + 0.5))} sekundach.")
            return too_many_requests(request, refusal.retry_after, message)
    try:
        response = await handler(request)
    except ApiError as error:
        return render(request, error)
    if emu.faults.take_lost_response(path):
        _reset_connection(request)
        raise asyncio.CancelledError
    return response


def admin_refusal(request: web.Request) -> Refusal | None:
    """Why an `/_emulator/*` request is refused (None: let it through).

    Admin tokens configured: `Authorization: Bearer <token>` (401 without one or with a
    wrong one). None configured: 403, unless the emulator was started with
    `--insecure-admin`. A POST must be `Content-Type: application/json` in every case
    (415), so a cross-site form or text/plain POST from a browser never gets through.
    """
    config = emulator(request).config
    if config.admin_tokens:
        caller = authorize([TokenEntry("admin", t) for t in config.admin_tokens],
                           request.headers)
        if isinstance(caller, Refusal):
            return caller
    elif not config.insecure_admin:
        return Refusal(403, "the emulator's admin endpoints are off: start it with "
                            "--admin-token-file FILE (or KSEF_EMULATOR_ADMIN_TOKEN_FILE), or "
                            "with --insecure-admin for a local experiment")
    if request.method == "POST":
        return require_json(request.headers.get("Content-Type"))
    return None


def _is_admin(request: web.Request) -> bool:
    """By the route matched as well as by the path, so no spelling of a path slips by."""
    resource = request.match_info.route.resource
    paths = (request.path, resource.canonical if resource is not None else "")
    return any(p == ADMIN_PREFIX or p.startswith(ADMIN_PREFIX + "/") for p in paths)


@web.middleware
async def admin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _is_admin(request):
        refused = admin_refusal(request)
        if refused is not None:
            return web.json_response({"error": refused.message}, status=refused.status,
                                     headers=refused.headers)
    return await handler(request)
