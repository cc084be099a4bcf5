"""JWTs the emulator issues: operation (authentication), access and refresh tokens."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from pipeline.emulator.errors import ApiError, unauthorized

ISSUER = "ksef-emulator"
AUDIENCE = "ksef-emulator"
OPERATION = "OperationToken"
ACCESS = "ContextToken"
REFRESH = "RefreshToken"


@dataclass(frozen=True)
class Context:
    """Who is calling: the authenticated context and how it authenticated."""

    nip: str
    auth_reference: str
    token_reference: str | None


class TokenMinter:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def mint(self, kind: str, claims: dict[str, Any], lifetime: dt.timedelta,
             now: dt.datetime) -> tuple[str, dt.datetime]:
        expires = now + lifetime
        payload = {**claims, "token-type": kind, "iat": int(now.timestamp()),
                   "exp": int(expires.timestamp()), "iss": ISSUER, "aud": AUDIENCE,
                   "jti": secrets.token_hex(8)}
        return jwt.encode(payload, self._secret, algorithm="HS256"), expires

    def verify(self, token: str, kind: str) -> dict[str, Any]:
        """Claims of a valid, unexpired token of `kind`; raises a 401 ApiError otherwise."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("Token wygasł.") from exc
        except jwt.InvalidTokenError as exc:
            raise unauthorized("Nieprawidłowy token.") from exc
        if claims.get("token-type") != kind:
            raise unauthorized(f"Oczekiwano tokena typu {kind}.")
        return claims

    def peek_context(self, header: str | None) -> str | None:
        """Context NIP of a bearer access token, for rate-limit keys (None if unreadable)."""
        token = bearer(header)
        if token is None:
            return None
        try:
            claims = self.verify(token, ACCESS)
        except ApiError:
            return None
        value = claims.get("context-identifier-value")
        return value if isinstance(value, str) else None


def bearer(header: str | None) -> str | None:
    if not header or not header.lower().startswith("bearer "):
        return None
    token = header[7:].strip()
    return token or None


def context_of(claims: dict[str, Any]) -> Context:
    return Context(
        nip=str(claims["context-identifier-value"]),
        auth_reference=str(claims["auth-reference"]),
        token_reference=claims.get("token-reference"),
    )
