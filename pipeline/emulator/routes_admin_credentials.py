"""Operator controls for credentials (`/_emulator/...`, see `emulator-ctl`): grant a subject
permission in a context, revoke any certificate by serial, move the certificate clock.

The same things a tester does in KSeF TEST through `/testdata/*` and `/certificates/*`,
without first logging in, so drills (a revoked or expiring certificate) are one call.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from pipeline.emulator.errors import VALIDATION, bad_request
from pipeline.emulator.request_helpers import emulator, field, read_json
from pipeline.emulator.routes_certificates import REVOCATION_REASONS, revoke_certificate
from pipeline.emulator.routes_testdata import PERMISSION_TYPES, subject_identifier
from pipeline.emulator.timefmt import iso, parse, utcnow
from pipeline.ksef.numbers import nip_is_valid


async def grant(request: web.Request) -> web.Response:
    """`{"context": NIP, "subjectType": "Nip"|"Pesel"|"Fingerprint", "subject": value,
    "permissions": [...]}` (default InvoiceWrite + InvoiceRead)."""
    emu = emulator(request)
    body = await read_json(request)
    context = field(body, "context", str)
    if not nip_is_valid(context):
        raise bad_request(VALIDATION, f"context {context!r} is not a valid NIP")
    kind, value = subject_identifier(field(body, "subjectType", str, required=False) or "Nip",
                                     field(body, "subject", str))
    permissions = field(body, "permissions", list, required=False) or ["InvoiceWrite",
                                                                       "InvoiceRead"]
    if any(p not in PERMISSION_TYPES for p in permissions):
        raise bad_request(VALIDATION, f"permissions must be among {PERMISSION_TYPES}")
    emu.certs.grant(context, kind, value, permissions, iso(utcnow()))
    return web.json_response({"context": context, "subjectType": kind, "subject": value,
                              "permissions": emu.certs.permissions(context, kind, value)},
                             status=201)


async def revoke(request: web.Request) -> web.Response:
    """`{"serial": HEX, "reason": ...}`: any certificate, KSeF-issued or self-signed."""
    emu = emulator(request)
    body = await read_json(request)
    serial = field(body, "serial", str).upper().removeprefix("0X").lstrip("0") or "0"
    reason = field(body, "reason", str, required=False) or "Unspecified"
    if reason not in REVOCATION_REASONS:
        raise bad_request(VALIDATION, f"reason must be one of {REVOCATION_REASONS}")
    if any(c not in "0123456789ABCDEF" for c in serial):
        raise bad_request(VALIDATION, f"serial {serial!r} is not hexadecimal")
    newly = revoke_certificate(emu, serial, reason)
    return web.json_response({"serial": serial, "revoked": True, "alreadyRevoked": not newly},
                             status=201)


async def clock(request: web.Request) -> web.Response:
    """`{"offsetSeconds": N}` or `{"now": ISO}`: the instant certificates are judged and
    issued at (validity checks, enrollment); `{}` resets it. Tokens and sessions keep
    real time."""
    emu = emulator(request)
    body = await read_json(request) if request.can_read_body else {}
    if body.get("now") is not None:
        try:
            emu.clock_offset = parse(field(body, "now", str)) - utcnow()
        except ValueError as exc:
            raise bad_request(VALIDATION, "'now' is not an ISO 8601 date-time") from exc
    else:
        seconds = field(body, "offsetSeconds", (int, float), required=False) or 0
        emu.clock_offset = dt.timedelta(seconds=seconds)
    return web.json_response({"certificateNow": iso(emu.certificate_now()),
                              "offsetSeconds": emu.clock_offset.total_seconds()})


def routes() -> list[web.RouteDef]:
    admin = "/_emulator"
    return [
        web.post(admin + "/permissions", grant),
        web.post(admin + "/certificates/revoke", revoke),
        web.post(admin + "/clock", clock),
    ]
