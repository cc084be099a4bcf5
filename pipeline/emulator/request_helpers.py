"""Request helpers shared by the route modules."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from pipeline.emulator.errors import (
    CONTINUATION_TOKEN,
    VALIDATION,
    ApiError,
    bad_request,
    unauthorized,
)
from pipeline.emulator.state import Emulator
from pipeline.emulator.tokens import ACCESS, Context, bearer, context_of

EMULATOR = web.AppKey("emulator", Emulator)


def emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR]


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(VALIDATION, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request(VALIDATION, "request body must be a JSON object")
    return body


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...],
          *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(VALIDATION, f"'{name}' is required")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise bad_request(VALIDATION, f"'{name}' has the wrong type")
    return value


def b64_field(body: dict[str, Any], name: str, *, required: bool = True) -> bytes | None:
    text = field(body, name, str, required=required)
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(VALIDATION, f"'{name}' is not valid base64") from exc


def require_context(request: web.Request) -> Context:
    """The caller's context from its bearer access token (401 when missing or invalid)."""
    token = bearer(request.headers.get("Authorization"))
    if token is None:
        raise unauthorized("Brak tokena dostępowego (nagłówek Authorization: Bearer).")
    emu = emulator(request)
    context = context_of(emu.minter.verify(token, ACCESS))
    auth = emu.store.auth(context.auth_reference)
    if auth is None or auth["revoked"]:
        raise unauthorized("Uwierzytelnienie zostało unieważnione.")
    return context


def page_size(request: web.Request, default: int = 10, low: int = 10, high: int = 1000) -> int:
    raw = request.query.get("pageSize")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise bad_request(VALIDATION, "pageSize must be an integer") from exc
    if not low <= value <= high:
        raise bad_request(VALIDATION, f"pageSize must be within {low}..{high}")
    return value


def continuation_offset(request: web.Request) -> int:
    """Offset encoded in the `x-continuation-token` header (0 when absent)."""
    token = request.headers.get("x-continuation-token")
    if not token:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ApiError(400, CONTINUATION_TOKEN) from exc
    if not isinstance(value, int) or value < 0:
        raise ApiError(400, CONTINUATION_TOKEN)
    return value


def continuation_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode("ascii")
