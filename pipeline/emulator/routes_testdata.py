"""Test-data endpoints of KSeF's test environment (subjects, permissions, attachments)."""

from __future__ import annotations

from aiohttp import web

from pipeline.emulator.errors import SUBJECT_EXISTS, VALIDATION, bad_request
from pipeline.emulator.request_helpers import emulator, field, read_json
from pipeline.emulator.timefmt import iso, utcnow
from pipeline.ksef.numbers import nip_is_valid

SUBJECT_TYPES = ("EnforcementAuthority", "VatGroup", "JST")
IDENTIFIER_TYPES = ("Nip", "Pesel", "Fingerprint")
PERMISSION_TYPES = ("InvoiceRead", "InvoiceWrite", "Introspection", "CredentialsRead",
                    "CredentialsManage", "EnforcementOperations", "SubunitManage")


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


def subject_identifier(kind: str, value: str) -> tuple[str, str]:
    """A validated (type, value) of a subject that permissions are granted to."""
    if kind not in IDENTIFIER_TYPES:
        raise bad_request(VALIDATION, f"identifier type must be one of {IDENTIFIER_TYPES}")
    if kind == "Nip" and not nip_is_valid(value):
        raise bad_request(VALIDATION, f"{value!r} is not a valid NIP")
    if kind == "Pesel" and not (len(value) == 11 and value.isdigit()):
        raise bad_request(VALIDATION, f"{value!r} is not a PESEL (11 digits)")
    if kind == "Fingerprint":
        value = value.upper()
        if len(value) != 64 or any(c not in "0123456789ABCDEF" for c in value):
            raise bad_request(VALIDATION, "a fingerprint is the SHA-256 of the certificate's "
                              "DER, 64 hex digits")
    return kind, value


def _grant_target(body: dict[str, object]) -> tuple[str, str, str]:
    """(context NIP, subject type, subject value) of a testdata permissions request."""
    context = field(body, "contextIdentifier", dict)
    who = field(body, "authorizedIdentifier", dict)
    if context.get("type") != "Nip":
        raise bad_request(VALIDATION, "contextIdentifier type must be 'Nip'")
    nip = _nip(context, "value")
    kind, value = subject_identifier(str(who.get("type")), str(who.get("value", "")))
    return nip, kind, value


async def grant_permissions(request: web.Request) -> web.Response:
    """Permissions for a subject (NIP, PESEL or certificate fingerprint) in a context: the
    subject can then authenticate in that context with its certificate."""
    emu = emulator(request)
    body = await read_json(request)
    nip, kind, value = _grant_target(body)
    wanted = field(body, "permissions", list)
    types = [p.get("permissionType") if isinstance(p, dict) else None for p in wanted]
    if not types or any(t not in PERMISSION_TYPES for t in types):
        raise bad_request(VALIDATION, f"permissions[].permissionType must be among "
                          f"{PERMISSION_TYPES}")
    emu.certs.grant(nip, kind, value, [str(t) for t in types], iso(utcnow()))
    return web.Response(status=200)


async def revoke_permissions(request: web.Request) -> web.Response:
    emu = emulator(request)
    nip, kind, value = _grant_target(await read_json(request))
    emu.certs.revoke_grants(nip, kind, value)
    return web.Response(status=200)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v2/testdata/subject", create_subject),
        web.post("/v2/testdata/permissions", grant_permissions),
        web.post("/v2/testdata/permissions/revoke", revoke_permissions),
        web.post("/v2/testdata/attachment", grant_attachments),
        web.post("/v2/testdata/attachment/revoke", revoke_attachments),
    ]
