"""KSeF certificates (`/certificates/*`): limits, enrollment from a CSR, status, retrieval,
query and revocation, issued by the emulator CA.

Certificates belong to the authenticated subject (NIP, PESEL or fingerprint of the
certificate used to log in), not to the context. Enrollment needs a XAdES login, as in
KSeF (a token login gets 25001/25002). Enrollment is processed at once: its status is
200 with the serial number by the time the client polls. Revoking a certificate also
invalidates the logins made with it (their access and refresh tokens stop working).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pipeline.emulator import refs
from pipeline.emulator.ca import CERTIFICATE_TYPES, new_serial, serial_hex
from pipeline.emulator.enrollment import LIMITS, check_csr, enrollment_data
from pipeline.emulator.errors import (
    CERTIFICATE_LIMIT,
    CERTIFICATE_NOT_FOUND,
    ENROLLMENT_LIMIT,
    ENROLLMENT_NOT_FOUND,
    NO_ENROLLMENT,
    NO_ENROLLMENT_DATA,
    NOT_REVOCABLE,
    VALIDATION,
    bad_request,
)
from pipeline.emulator.request_helpers import (
    b64_field,
    emulator,
    field,
    read_json,
    require_context,
)
from pipeline.emulator.state import Emulator
from pipeline.emulator.store import Row
from pipeline.emulator.timefmt import iso, parse

_SERIAL = re.compile(r"^[0-9A-F]{16}$")
_NAME = re.compile(r"^[a-zA-Z0-9_\- ąćęłńóśźżĄĆĘŁŃÓŚŹŻ]{5,100}$")
REVOCATION_REASONS = ("Unspecified", "Superseded", "KeyCompromise")
STATUSES = ("Active", "Blocked", "Revoked", "Expired")


def _login(request: web.Request) -> Row:
    """The caller's authentication operation (who the certificates belong to)."""
    emu = emulator(request)
    context = require_context(request)
    row = emu.store.auth(context.auth_reference)
    assert row is not None  # require_context checked it
    if row["subject_type"] is None:  # a KSeF-token login: the context NIP is the subject
        row = {**row, "subject_type": "Nip", "subject_value": row["nip"]}
    return row


def _xades_certificate(row: Row, code: int) -> x509.Certificate:
    if row["certificate"] is None:
        raise bad_request(code, "log in with a XAdES signature (not a KSeF token) to enroll")
    return x509.load_der_x509_certificate(bytes(row["certificate"]))


def _active(emu: Emulator, cert: Row) -> bool:
    return not cert["revoked"] and parse(cert["valid_to"]) > emu.certificate_now()


def _status(emu: Emulator, cert: Row) -> str:
    if cert["revoked"]:
        return "Revoked"
    return "Active" if _active(emu, cert) else "Expired"


def _counts(emu: Emulator, owner: Row) -> tuple[int, int, int, int]:
    """(enrollment limit, enrollments used, certificate limit, active certificates)."""
    enroll_limit, cert_limit = LIMITS.get(owner["subject_type"], LIMITS["Fingerprint"])
    used = emu.certs.count_enrollments(owner["subject_type"], owner["subject_value"])
    active = sum(_active(emu, c) for c in emu.certs.owned_certificates(
        owner["subject_type"], owner["subject_value"]))
    return enroll_limit, used, cert_limit, active


async def limits(request: web.Request) -> web.Response:
    emu = emulator(request)
    enroll_limit, used, cert_limit, active = _counts(emu, _login(request))
    return web.json_response({
        "canRequest": used < enroll_limit and active < cert_limit,
        "enrollment": {"remaining": max(0, enroll_limit - used), "limit": enroll_limit},
        "certificate": {"remaining": max(0, cert_limit - active), "limit": cert_limit}})


async def data(request: web.Request) -> web.Response:
    certificate = _xades_certificate(_login(request), NO_ENROLLMENT_DATA)
    return web.json_response(enrollment_data(certificate))


def _validity(emu: Emulator, body: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    text = field(body, "validFrom", str, required=False)
    try:
        start = parse(text) if text else emu.certificate_now()
    except ValueError as exc:
        raise bad_request(VALIDATION, "'validFrom' is not an ISO 8601 date-time") from exc
    return start, start + dt.timedelta(days=emu.config.certificate_days)


async def enroll(request: web.Request) -> web.Response:
    emu = emulator(request)
    login = _login(request)
    authenticated = _xades_certificate(login, NO_ENROLLMENT)
    body = await read_json(request)
    name = field(body, "certificateName", str)
    kind = field(body, "certificateType", str)
    if not _NAME.match(name):
        raise bad_request(VALIDATION, "'certificateName' must have 5..100 letters, digits, "
                          "spaces, '_' or '-'")
    if kind not in CERTIFICATE_TYPES:
        raise bad_request(VALIDATION, f"'certificateType' must be one of {CERTIFICATE_TYPES}")
    der = b64_field(body, "csr")
    assert der is not None
    valid_from, valid_to = _validity(emu, body)
    csr = check_csr(der, authenticated)
    enroll_limit, used, cert_limit, active = _counts(emu, login)
    if used >= enroll_limit:
        raise bad_request(ENROLLMENT_LIMIT, f"{used} of {enroll_limit} enrollments used")
    if active >= cert_limit:
        raise bad_request(CERTIFICATE_LIMIT, f"{active} of {cert_limit} active certificates")
    now = emu.certificate_now()
    reference = refs.reference_number(refs.ENROLLMENT, now)
    owner = {"owner_type": login["subject_type"], "owner_value": login["subject_value"]}
    emu.certs.add_enrollment({"reference": reference, **owner, "requested": iso(now),
                              "status_code": 100,
                              "status_description": "Wniosek przyjęty do realizacji"})
    public_key = csr.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    taken = emu.certs.certificate_by_key(public_key)
    if taken is not None:
        emu.certs.add_certificate_refusal(reference, json.dumps(
            ["Klucz publiczny został już certyfikowany przez inny podmiot.",
             f"the key is already in certificate {taken['serial']}"], ensure_ascii=False))
    else:
        serial = new_serial()
        issued = emu.ca.issue(csr, kind, valid_from, valid_to, serial)
        common_name = enrollment_data(authenticated).get("commonName", "")
        emu.certs.add_certificate({
            "serial": serial_hex(serial), **owner, "name": name, "type": kind,
            "common_name": str(common_name), "der": issued.public_bytes(Encoding.DER),
            "public_key": public_key, "valid_from": iso(valid_from), "valid_to": iso(valid_to),
            "request_date": iso(now), "enrollment": reference},
            {"status_code": 200, "serial": serial_hex(serial),
             "status_description": "Wniosek obsłużony (certyfikat wygenerowany)"})
    return web.json_response({"referenceNumber": reference, "timestamp": iso(now)}, status=202)


async def enrollment_status(request: web.Request) -> web.Response:
    emu = emulator(request)
    login = _login(request)
    reference = request.match_info["referenceNumber"]
    row = emu.certs.enrollment(reference)
    if row is None or (row["owner_type"], row["owner_value"]) != (
            login["subject_type"], login["subject_value"]):
        raise bad_request(ENROLLMENT_NOT_FOUND, f"no enrollment {reference} of this subject")
    status: dict[str, Any] = {"code": row["status_code"],
                              "description": row["status_description"]}
    if row["status_details"]:
        status["details"] = json.loads(row["status_details"])
    body: dict[str, Any] = {"requestDate": row["requested"], "status": status}
    if row["serial"]:
        body["certificateSerialNumber"] = row["serial"]
    return web.json_response(body)


def _owned(emu: Emulator, login: Row, serial: str) -> Row | None:
    cert = emu.certs.certificate(serial)
    if cert is None or (cert["owner_type"], cert["owner_value"]) != (
            login["subject_type"], login["subject_value"]):
        return None
    return cert


async def retrieve(request: web.Request) -> web.Response:
    emu = emulator(request)
    login = _login(request)
    serials = field(await read_json(request), "certificateSerialNumbers", list)
    if not 1 <= len(serials) <= 10 or not all(isinstance(s, str) and _SERIAL.match(s)
                                              for s in serials):
        raise bad_request(VALIDATION, "'certificateSerialNumbers' must list 1..10 serial "
                          "numbers of 16 upper-case hex digits")
    found = [c for c in (_owned(emu, login, s) for s in serials) if c is not None]
    return web.json_response({"certificates": [{
        "certificate": base64.b64encode(bytes(c["der"])).decode("ascii"),
        "certificateName": c["name"], "certificateSerialNumber": c["serial"],
        "certificateType": c["type"]} for c in found]})


def _page(request: web.Request) -> tuple[int, int]:
    try:
        size = int(request.query.get("pageSize", "10"))
        offset = int(request.query.get("pageOffset", "0"))
    except ValueError as exc:
        raise bad_request(VALIDATION, "pageSize and pageOffset must be integers") from exc
    if not 10 <= size <= 50 or offset < 0:
        raise bad_request(VALIDATION, "pageSize must be within 10..50, pageOffset >= 0")
    return size, offset


def _matches(emu: Emulator, cert: Row, body: dict[str, Any]) -> bool:
    serial = body.get("certificateSerialNumber")
    name = body.get("name")
    after = body.get("expiresAfter")
    return ((not serial or cert["serial"] == serial)
            and (not name or str(name).lower() in cert["name"].lower())
            and (not body.get("type") or cert["type"] == body["type"])
            and (not body.get("status") or _status(emu, cert) == body["status"])
            and (not after or parse(cert["valid_to"]) > parse(str(after))))


async def query(request: web.Request) -> web.Response:
    emu = emulator(request)
    login = _login(request)
    size, offset = _page(request)
    body = await read_json(request) if request.can_read_body else {}
    if body.get("status") not in (None, *STATUSES):
        raise bad_request(VALIDATION, f"'status' must be one of {STATUSES}")
    try:
        rows = [c for c in emu.certs.owned_certificates(login["subject_type"],
                                                        login["subject_value"])
                if _matches(emu, c, body)]
    except ValueError as exc:
        raise bad_request(VALIDATION, "'expiresAfter' is not an ISO 8601 date-time") from exc
    page = rows[offset * size:(offset + 1) * size]
    return web.json_response({"hasMore": len(rows) > (offset + 1) * size, "certificates": [{
        "certificateSerialNumber": c["serial"], "name": c["name"], "type": c["type"],
        "commonName": c["common_name"], "status": _status(emu, c),
        "subjectIdentifier": {"type": c["owner_type"], "value": c["owner_value"]},
        "validFrom": c["valid_from"], "validTo": c["valid_to"], "lastUseDate": c["last_use"],
        "requestDate": c["request_date"]} for c in page]})


def revoke_certificate(emu: Emulator, serial: str, reason: str) -> bool:
    """Revoke any certificate by serial (KSeF-issued or not) and the logins made with it;
    False when it was revoked before."""
    if not emu.certs.revoke(serial, iso(emu.certificate_now()), reason):
        return False
    emu.store.revoke_auths_by_certificate(serial)
    return True


async def revoke(request: web.Request) -> web.Response:
    emu = emulator(request)
    login = _login(request)
    serial = request.match_info["certificateSerialNumber"]
    body = await read_json(request) if request.can_read_body else {}
    reason = body.get("revocationReason") or "Unspecified"
    if reason not in REVOCATION_REASONS:
        raise bad_request(VALIDATION, f"'revocationReason' must be one of {REVOCATION_REASONS}")
    cert = _owned(emu, login, serial)
    if cert is None:
        raise bad_request(CERTIFICATE_NOT_FOUND, f"no certificate {serial} of this subject")
    if not _active(emu, cert) or not revoke_certificate(emu, serial, reason):
        raise bad_request(NOT_REVOCABLE, f"certificate {serial} is {_status(emu, cert)}")
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v2/certificates/limits", limits),
        web.get("/v2/certificates/enrollments/data", data),
        web.post("/v2/certificates/enrollments", enroll),
        web.get("/v2/certificates/enrollments/{referenceNumber}", enrollment_status),
        web.post("/v2/certificates/retrieve", retrieve),
        web.post("/v2/certificates/query", query),
        web.post("/v2/certificates/{certificateSerialNumber}/revoke", revoke),
    ]
