"""`POST /auth/xades-signature`: authentication with a XAdES-signed `AuthTokenRequest`.

Faults of the document or its signature are refused at once with KSeF's 400 exception
codes (see `xades_verify`); an unknown, used or expired challenge with 21111, as in the
token flow. A verified request always starts an operation; certificate faults (460) and
missing permissions (415) are its failed status on `GET /auth/{ref}`, as KSeF reports
them. A successful one is redeemed and refreshed exactly like a token authentication.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding

from pipeline.emulator.cert_subject import Refused, authenticate, identifier_of
from pipeline.emulator.errors import INVALID_SUBJECT, ApiError, bad_request
from pipeline.emulator.request_helpers import emulator
from pipeline.emulator.routes_auth import AUTH_OK, claim_challenge, start_operation
from pipeline.emulator.timefmt import iso, utcnow
from pipeline.emulator.xades_verify import XadesRefusal, verify_auth_request
from pipeline.ksef.numbers import nip_is_valid

MAX_DOCUMENT_BYTES = 1_000_000


async def xades_signature(request: web.Request) -> web.Response:
    emu = emulator(request)
    body = await request.read()
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ApiError(413, 0, detail=f"the document has {len(body)} bytes")
    try:
        signed = await asyncio.to_thread(verify_auth_request, body)
    except XadesRefusal as refusal:
        raise bad_request(refusal.code, refusal.detail) from refusal
    if not nip_is_valid(signed.context_nip):
        raise bad_request(INVALID_SUBJECT, f"ContextIdentifier/Nip {signed.context_nip!r} is "
                          "not a valid NIP")
    now = utcnow()
    claim_challenge(emu, signed.challenge, now)
    fields: dict[str, object] = {
        "nip": signed.context_nip, "token_reference": None,
        "cert_serial": f"{signed.certificate.serial_number:X}",
        "certificate": signed.certificate.public_bytes(Encoding.DER)}
    chain = request.query.get("verifyCertificateChain", "").lower() == "true"
    try:
        subject = authenticate(emu, signed, chain_required=chain)
    except Refused as refused:
        found = identifier_of(signed.certificate)
        fields.update(method=found[2] if found else "QualifiedSignature",
                      status_code=refused.status[0],
                      status_description=refused.status[1],
                      status_details=json.dumps(refused.details, ensure_ascii=False))
    else:
        fields.update(method=subject.method, subject_type=subject.type,
                      subject_value=subject.value, status_code=AUTH_OK[0],
                      status_description=AUTH_OK[1], status_details=None)
        emu.certs.touch(subject.serial, iso(now))
    return start_operation(emu, now, fields)


def routes() -> list[web.RouteDef]:
    return [web.post("/v2/auth/xades-signature", xades_signature)]
