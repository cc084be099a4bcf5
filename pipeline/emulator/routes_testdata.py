"""Test-data endpoints of KSeF's test environment (subjects, attachment permission)."""

from __future__ import annotations

from aiohttp import web

from pipeline.emulator.errors import SUBJECT_EXISTS, VALIDATION, bad_request
from pipeline.emulator.request_helpers import emulator, field, read_json
from pipeline.emulator.timefmt import iso, utcnow
from pipeline.ksef.numbers import nip_is_valid

SUBJECT_TYPES = ("EnforcementAuthority", "VatGroup", "JST")


def _nip(body: dict[str, object], name: str) -> str:
    nip: str = field(body, name, str)
    if not nip_is_valid(nip):
        raise bad_request(VALIDATION, f"'{name}' {nip!r} is not a valid NIP")
    return nip


async def create_subject(request: web.Request) -> web.Response:
    emu = emulator(request)
    body = await read_json(request)
    nip = _nip(body, "subjectNip")
    subject_type = field(body, "subjectType", str)
    description = field(body, "description", str)
    if subject_type not in SUBJECT_TYPES:
        raise bad_request(VALIDATION, f"subjectType must be one of {SUBJECT_TYPES}")
    if not 5 <= len(description) <= 256:
        raise bad_request(VALIDATION, "description must have 5..256 characters")
    if not emu.store.add_subject({"nip": nip, "subject_type": subject_type,
                                  "description": description, "created": iso(utcnow())}):
        raise bad_request(SUBJECT_EXISTS)
    return web.Response(status=200)


async def _set_attachments(request: web.Request, enabled: bool) -> web.Response:
    emu = emulator(request)
    nip = _nip(await read_json(request), "nip")
    emu.store.add_subject({"nip": nip, "subject_type": "EnforcementAuthority",
                           "description": "created by the attachment grant",
                           "created": iso(utcnow())})
    emu.store.set_attachments(nip, enabled)
    return web.Response(status=200)


async def grant_attachments(request: web.Request) -> web.Response:
    return await _set_attachments(request, True)


async def revoke_attachments(request: web.Request) -> web.Response:
    return await _set_attachments(request, False)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v2/testdata/subject", create_subject),
        web.post("/v2/testdata/attachment", grant_attachments),
        web.post("/v2/testdata/attachment/revoke", revoke_attachments),
    ]
