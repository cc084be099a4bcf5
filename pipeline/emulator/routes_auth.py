"""Authentication with a KSeF token, the public keys, and KSeF token issuance.

Flow: `POST /auth/challenge` -> `POST /auth/ksef-token` (`token|timestampMs` encrypted
with RSA-OAEP SHA-256 under the KsefTokenEncryption key) -> `GET /auth/{ref}` ->
`POST /auth/token/redeem` (access + refresh JWT, once) -> `POST /auth/token/refresh`.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets

from aiohttp import web

from pipeline.emulator import refs
from pipeline.emulator.cert_subject import METHODS
from pipeline.emulator.errors import (
    INVALID_CHALLENGE,
    NOT_AUTHENTICATED,
    NOT_AUTHORIZED,
    UNKNOWN_KEY,
    VALIDATION,
    bad_request,
    unauthorized,
)
from pipeline.emulator.request_helpers import (
    b64_field,
    client_ip,
    emulator,
    field,
    read_json,
    require_context,
)
from pipeline.emulator.state import Emulator
from pipeline.emulator.store import Row
from pipeline.emulator.timefmt import iso, utcnow
from pipeline.emulator.tokens import ACCESS, OPERATION, REFRESH, bearer
from pipeline.ksef.crypto import unwrap_key
from pipeline.ksef.numbers import nip_is_valid, sha256_b64

CHALLENGE_MINUTES = 10
OPERATION_TOKEN_MINUTES = 60
AUTH_IN_PROGRESS = (100, "Uwierzytelnianie w toku")
AUTH_OK = (200, "Uwierzytelnianie zakończone sukcesem")
NO_PERMISSIONS = (415, "Uwierzytelnianie zakończone niepowodzeniem")
BAD_TOKEN = (450, "Uwierzytelnianie zakończone niepowodzeniem z powodu błędnego tokenu")


def issue_ksef_token(emu: Emulator, nip: str, description: str = "emulator token") -> Row:
    """Create the subject if needed and a new KSeF token for context `nip`."""
    now = utcnow()
    emu.store.add_subject({"nip": nip, "subject_type": "EnforcementAuthority",
                           "description": "created for a KSeF token", "created": iso(now)})
    reference = refs.reference_number(refs.TOKEN, now)
    token = f"{reference}|nip-{nip}|{secrets.token_hex(32)}"
    emu.store.add_token({"token_hash": sha256_b64(token.encode()), "reference": reference,
                         "nip": nip, "description": description, "created": iso(now)})
    return {"referenceNumber": reference, "token": token}


async def public_keys(request: web.Request) -> web.Response:
    return web.json_response(emulator(request).keys.published())


async def challenge(request: web.Request) -> web.Response:
    emu = emulator(request)
    now = utcnow()
    value = refs.reference_number(refs.CHALLENGE, now)
    stamp = int(now.timestamp() * 1000)
    emu.store.add_challenge({"challenge": value, "timestamp_ms": stamp,
                             "client_ip": client_ip(request)})
    return web.json_response({"challenge": value, "timestamp": iso(now), "timestampMs": stamp,
                              "clientIp": client_ip(request)})


def _evaluate(emu: Emulator, context_nip: str, encrypted: bytes, stamp: int,
              ) -> tuple[tuple[int, str], str | None, str | None]:
    """(status, detail, token reference) of a KSeF-token authentication attempt."""
    try:
        plain = unwrap_key(emu.keys.token.private_key, encrypted).decode("utf-8")
        token, _, sent_stamp = plain.rpartition("|")
    except (ValueError, UnicodeDecodeError):
        return BAD_TOKEN, "Nieprawidłowy token", None
    if not token or sent_stamp != str(stamp):
        return BAD_TOKEN, "Nieprawidłowy czas tokena", None
    row = emu.store.token_by_hash(sha256_b64(token.encode()))
    if row is None:
        return BAD_TOKEN, "Nieprawidłowy token", None
    if row["revoked"]:
        return BAD_TOKEN, "Token unieważniony", row["reference"]
    if row["nip"] != context_nip:
        return NO_PERMISSIONS, "Brak przypisanych uprawnień", row["reference"]
    return AUTH_OK, None, row["reference"]


async def ksef_token(request: web.Request) -> web.Response:
    emu = emulator(request)
    body = await read_json(request)
    value = field(body, "challenge", str)
    context = field(body, "contextIdentifier", dict)
    encrypted = b64_field(body, "encryptedToken")
    key_id = field(body, "publicKeyId", str, required=False)
    if key_id is not None and key_id != emu.keys.token.public_key_id:
        raise bad_request(UNKNOWN_KEY, f"Klucz o identyfikatorze {key_id} nie jest wspierany.")
    if context.get("type") != "Nip" or not isinstance(context.get("value"), str):
        raise bad_request(VALIDATION, "the emulator supports contextIdentifier type 'Nip' only")
    nip = context["value"]
    if not nip_is_valid(nip):
        raise bad_request(VALIDATION, f"contextIdentifier value {nip!r} is not a valid NIP")
    now = utcnow()
    found = claim_challenge(emu, value, now)
    assert encrypted is not None
    status, detail, token_ref = _evaluate(emu, nip, encrypted, found["timestamp_ms"])
    return start_operation(emu, now, {
        "nip": nip, "token_reference": token_ref, "method": "Token", "status_code": status[0],
        "status_description": status[1],
        "status_details": json.dumps([detail]) if detail else None})


def claim_challenge(emu: Emulator, value: str, now: dt.datetime) -> Row:
    """The challenge, marked used; 21111 when unknown, used before or older than 10 min."""
    found = emu.store.take_challenge(value)
    if found is None:
        raise bad_request(INVALID_CHALLENGE, f"challenge {value} was not issued by this "
                          "emulator or was used before")
    age_ms = now.timestamp() * 1000 - found["timestamp_ms"]
    if age_ms > CHALLENGE_MINUTES * 60e3:
        raise bad_request(INVALID_CHALLENGE, f"challenge {value} expired "
                          f"{age_ms / 60e3 - CHALLENGE_MINUTES:.1f} min ago "
                          f"(valid {CHALLENGE_MINUTES} min)")
    return found


def start_operation(emu: Emulator, now: dt.datetime, fields: Row) -> web.Response:
    """Record an authentication operation; 202 with its reference and operation token."""
    reference = refs.reference_number(refs.AUTH, now)
    emu.store.add_auth({"reference": reference, "started": iso(now), **fields})
    token, until = emu.minter.mint(OPERATION, {"operation-reference-number": reference},
                                   dt.timedelta(minutes=OPERATION_TOKEN_MINUTES), now)
    return web.json_response({"referenceNumber": reference,
                              "authenticationToken": {"token": token, "validUntil": iso(until)}},
                             status=202)


def _operation(request: web.Request) -> Row:
    """The authentication operation named by the bearer operation token."""
    emu = emulator(request)
    token = bearer(request.headers.get("Authorization"))
    if token is None:
        raise unauthorized("Brak tokena operacji uwierzytelniania.")
    claims = emu.minter.verify(token, OPERATION)
    reference = str(claims["operation-reference-number"])
    row = emu.store.auth(reference)
    if row is None:
        raise bad_request(NOT_AUTHENTICATED, f"Operacja uwierzytelniania o numerze "
                          f"referencyjnym {reference} nie została znaleziona.")
    return row


async def auth_status(request: web.Request) -> web.Response:
    row = _operation(request)
    if row["reference"] != request.match_info["referenceNumber"]:
        raise bad_request(NOT_AUTHENTICATED, "Operacja uwierzytelniania o numerze referencyjnym "
                          f"{request.match_info['referenceNumber']} nie została znaleziona.")
    status: dict[str, object] = {"code": row["status_code"],
                                 "description": row["status_description"]}
    if row["status_details"]:
        status["details"] = json.loads(row["status_details"])
    method = row["method"] or "Token"
    if method == "Token":
        info = {"category": "Token", "code": "token", "displayName": "Token KSeF"}
    else:
        code, name = METHODS[method]
        info = {"category": "XadesSignature", "code": code, "displayName": name}
    body = {"startDate": row["started"], "authenticationMethod": method,
            "authenticationMethodInfo": info, "status": status,
            "isTokenRedeemed": bool(row["redeemed"])}
    if row["last_refresh"]:
        body["lastTokenRefreshDate"] = row["last_refresh"]
    if row["refresh_valid_until"]:
        body["refreshTokenValidUntil"] = row["refresh_valid_until"]
    return web.json_response(body)


def _context_claims(row: Row) -> dict[str, object]:
    return {"context-identifier-type": "Nip", "context-identifier-value": row["nip"],
            "authentication-method": row["method"] or "Token", "auth-reference": row["reference"],
            "token-reference": row["token_reference"]}


async def redeem(request: web.Request) -> web.Response:
    emu = emulator(request)
    row = _operation(request)
    reference = row["reference"]
    if row["redeemed"]:
        raise bad_request(NOT_AUTHORIZED,
                          f"Tokeny dla operacji uwierzytelniania {reference} zostały już pobrane.")
    if row["status_code"] != AUTH_OK[0]:
        raise bad_request(NOT_AUTHORIZED, f"Status uwierzytelniania ({row['status_code']}) nie "
                          "pozwala na pobranie tokenów.")
    now = utcnow()
    claims = _context_claims(row)
    access, access_until = emu.minter.mint(
        ACCESS, claims, dt.timedelta(minutes=emu.config.access_token_minutes), now)
    refresh, refresh_until = emu.minter.mint(
        REFRESH, claims, dt.timedelta(days=emu.config.refresh_token_days), now)
    emu.store.update_auth(reference, redeemed=1, refresh_valid_until=iso(refresh_until))
    return web.json_response({
        "accessToken": {"token": access, "validUntil": iso(access_until)},
        "refreshToken": {"token": refresh, "validUntil": iso(refresh_until)},
    })


async def refresh(request: web.Request) -> web.Response:
    emu = emulator(request)
    token = bearer(request.headers.get("Authorization"))
    if token is None:
        raise unauthorized("Brak tokena odświeżającego.")
    claims = emu.minter.verify(token, REFRESH)
    row = emu.store.auth(str(claims["auth-reference"]))
    if row is None:
        raise bad_request(NOT_AUTHENTICATED, "Operacja uwierzytelniania nie została znaleziona.")
    if row["revoked"]:
        raise bad_request(NOT_AUTHORIZED, "Uwierzytelnienie zostało unieważnione (token KSeF "
                          "lub certyfikat odwołany).")
    now = utcnow()
    access, until = emu.minter.mint(ACCESS, _context_claims(row),
                                    dt.timedelta(minutes=emu.config.access_token_minutes), now)
    emu.store.update_auth(row["reference"], last_refresh=iso(now))
    return web.json_response({"accessToken": {"token": access, "validUntil": iso(until)}})


async def generate_token(request: web.Request) -> web.Response:
    """`POST /tokens`: a new KSeF token for the caller's own context."""
    context = require_context(request)
    body = await read_json(request)
    description = field(body, "description", str)
    field(body, "permissions", list)
    issued = issue_ksef_token(emulator(request), context.nip, description)
    return web.json_response(issued, status=202)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v2/security/public-key-certificates", public_keys),
        web.post("/v2/auth/challenge", challenge),
        web.post("/v2/auth/ksef-token", ksef_token),
        web.post("/v2/auth/token/redeem", redeem),
        web.post("/v2/auth/token/refresh", refresh),
        web.get("/v2/auth/{referenceNumber}", auth_status),
        web.post("/v2/tokens", generate_token),
    ]

