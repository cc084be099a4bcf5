"""Authentication of one context (KSeF token or XAdES signature), refresh, MF public keys.

Flow (API v2): `POST /auth/challenge` -> either `POST /auth/ksef-token` with
`token|timestampMs` encrypted under the MF KsefTokenEncryption key (`TokenAuth`), or
`POST /auth/xades-signature` with the `AuthTokenRequest` signed by the context's
certificate (`XadesAuth`) -> poll `GET /auth/{ref}` (bearer: the temporary
authenticationToken) until 200 -> `POST /auth/token/redeem` -> access + refresh JWTs.
The access token is renewed `refresh_margin` before its validUntil (or at half its
lifetime when that comes first); when the refresh token is gone or refused the whole flow
runs again. A failed authentication raises `KsefAuthError` with a `reason` for alerts.
Tokens and keys never reach a log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import rsa
from ksef_client import models as sdk
from ksef_client.clients.auth import AsyncAuthClient

from pipeline.ksef.crypto import public_key_from_certificate
from pipeline.ksef_api.auth_failures import reason_of_exception, reason_of_status
from pipeline.ksef_api.bodies import encrypted_ksef_token, ksef_token_auth_request
from pipeline.ksef_api.errors import (
    AuthFailureReason,
    KsefApiError,
    KsefAuthError,
    KsefProtocolError,
)
from pipeline.ksef_api.results import parse_api_datetime, required
from pipeline.ksef_api.transport import Transport
from pipeline.ksef_api.xades import signed_auth_token_request

if TYPE_CHECKING:
    from pipeline.ksef.credentials import CertificateCredential

SYMMETRIC_KEY_ENCRYPTION = "SymmetricKeyEncryption"
KSEF_TOKEN_ENCRYPTION = "KsefTokenEncryption"
AUTH_IN_PROGRESS = 100
AUTH_OK = 200


@dataclass(frozen=True)
class MfPublicKey:
    """One MF public-key certificate, for one usage, with its RSA key loaded."""

    usage: str
    certificate_b64: str = field(repr=False)
    public_key_id: str | None
    valid_from: dt.datetime
    valid_to: dt.datetime
    key: rsa.RSAPublicKey = field(repr=False, compare=False)


def select_key(
    certificates: list[sdk.PublicKeyCertificate], usage: str, now: dt.datetime
) -> MfPublicKey:
    """The newest certificate valid now for `usage` (KSeF may publish overlapping ones)."""
    best: MfPublicKey | None = None
    for cert in certificates:
        usages = {str(getattr(u, "value", u)) for u in cert.usage}
        if usage not in usages or not cert.certificate:
            continue
        valid_from = parse_api_datetime(cert.valid_from, "certificate validFrom")
        valid_to = parse_api_datetime(cert.valid_to, "certificate validTo")
        if not valid_from <= now < valid_to:
            continue
        if best is None or valid_from > best.valid_from:
            try:
                key = public_key_from_certificate(cert.certificate)
            except ValueError as exc:
                raise KsefProtocolError(f"MF {usage} certificate is unusable: {exc}") from exc
            best = MfPublicKey(usage, cert.certificate, cert.public_key_id or None,
                               valid_from, valid_to, key)
    if best is None:
        raise KsefProtocolError(f"KSeF publishes no certificate valid now for {usage}")
    return best


class PublicKeys:
    """Caches `GET /security/public-key-certificates`; refetches when a key nears expiry.

    One instance can serve every client of a process (the keys are the same for all).
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[list[sdk.PublicKeyCertificate]]],
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        margin: dt.timedelta = dt.timedelta(minutes=10),
    ) -> None:
        self._fetch = fetch
        self._wall = wall
        self._margin = margin
        self._certificates: list[sdk.PublicKeyCertificate] | None = None
        self._selected: dict[str, MfPublicKey] = {}
        self._lock = asyncio.Lock()

    async def get(self, usage: str) -> MfPublicKey:
        async with self._lock:
            now = self._wall()
            cached = self._selected.get(usage)
            if cached is not None and now + self._margin < cached.valid_to:
                return cached
            if self._certificates is None or cached is not None:
                self._certificates = await self._fetch()
            selected = select_key(self._certificates, usage, now)
            self._selected[usage] = selected
            return selected

    def invalidate(self) -> None:
        """Forget the keys (e.g. after KSeF said a key id is unknown or withdrawn)."""
        self._certificates = None
        self._selected.clear()


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    valid_until: dt.datetime
    renew_at: dt.datetime  # `margin` before expiry, or half the lifetime if that is shorter


def _token(info: sdk.TokenInfo, what: str, now: dt.datetime, margin: dt.timedelta) -> _Token:
    valid_until = parse_api_datetime(info.valid_until, f"{what} validUntil")
    lead = min(margin, max(valid_until - now, dt.timedelta(0)) / 2)
    return _Token(required(info.token, what), valid_until, valid_until - lead)


class ChallengeAuth:
    """Holds and renews the access token of one context; subclasses start the operation.

    Everything after the first step (poll, redeem, refresh, re-authentication) is the
    same for every method, so it lives here once.
    """

    method = "challenge"

    def __init__(
        self,
        context_nip: str,
        api: AsyncAuthClient,
        transport: Transport,
        *,
        refresh_margin: dt.timedelta = dt.timedelta(seconds=60),
        poll_timeout: float = 120.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.context_nip = context_nip
        self._api = api
        self._transport = transport
        self._margin = refresh_margin
        self._poll_timeout = poll_timeout
        self._sleep = sleep
        self._access: _Token | None = None
        self._refresh: _Token | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(context={self.context_nip})"

    def _fresh(self, token: _Token | None) -> bool:
        return token is not None and self._transport.now() < token.renew_at

    async def access_token(self) -> str:
        """A valid access token, refreshing or re-authenticating first when needed."""
        async with self._lock:
            if self._access is not None and self._fresh(self._access):
                return self._access.value
            if self._refresh is not None and self._fresh(self._refresh):
                try:
                    return await self._refresh_access()
                except KsefApiError:  # 401, or 400 (21301) for a revoked login
                    self._refresh = None
            return await self._authenticate()

    def invalidate(self, token: str) -> None:
        """KSeF refused `token` (401): drop it so the next call refreshes."""
        if self._access is not None and self._access.value == token:
            self._access = None

    async def authenticate(self) -> None:
        """Run the full challenge flow now (normally done lazily by `access_token`)."""
        async with self._lock:
            await self._authenticate()

    async def _start(self, challenge: sdk.AuthenticationChallengeResponse
                     ) -> sdk.AuthenticationInitResponse:
        """Send the method's proof of identity for `challenge` (the one differing step)."""
        raise NotImplementedError

    def _reason(self, code: int | None, details: tuple[str, ...]) -> AuthFailureReason:
        return reason_of_status(code, details)

    def _check_usable(self) -> None:
        """Raise KsefAuthError when the credential cannot succeed (before any request)."""

    async def _authenticate(self) -> str:
        self._check_usable()
        t = self._transport
        challenge = await t.call("POST", "/auth/challenge", self._api.get_challenge,
                                 idempotent=True)
        started = await self._start(challenge)
        temporary = required(started.authentication_token.token, "authenticationToken")
        await self._await_auth(required(started.reference_number, "referenceNumber"), temporary)
        tokens = await t.call("POST", "/auth/token/redeem",
                              lambda: self._api.redeem_token(temporary), idempotent=False)
        now = self._transport.now()
        self._access = _token(tokens.access_token, "accessToken", now, self._margin)
        self._refresh = _token(tokens.refresh_token, "refreshToken", now, self._margin)
        return self._access.value

    async def _await_auth(self, reference: str, temporary: str) -> None:
        path = f"/auth/{reference}"
        delay = 0.05
        waited = 0.0
        while True:
            status = await self._transport.call(
                "GET", path, lambda: self._api.get_auth_status(reference, temporary),
                idempotent=True,
            )
            code = status.status.code
            if code == AUTH_OK:
                return
            if code != AUTH_IN_PROGRESS:
                details = tuple(status.status.details or ())
                raise KsefAuthError(200, code, status.status.description, details,
                                    operation=f"{self.method} authentication of context "
                                              f"{self.context_nip}",
                                    reason=self._reason(code, details))
            if waited >= self._poll_timeout:
                raise KsefAuthError(200, code, "authentication still in progress after "
                                    f"{self._poll_timeout:.0f} s", operation="GET /auth/{ref}")
            await self._sleep(delay)
            waited += delay
            delay = min(delay * 2, 2.0)

    async def _refresh_access(self) -> str:
        assert self._refresh is not None
        refresh = self._refresh.value
        answer = await self._transport.call(
            "POST", "/auth/token/refresh", lambda: self._api.refresh_access_token(refresh),
            idempotent=True,
        )
        self._access = _token(answer.access_token, "accessToken", self._transport.now(),
                              self._margin)
        return self._access.value


class TokenAuth(ChallengeAuth):
    """A context authenticated by a KSeF token (accepted by KSeF until 2026-12-31)."""

    method = "KSeF-token"

    def __init__(
        self,
        context_nip: str,
        ksef_token: str,
        api: AsyncAuthClient,
        transport: Transport,
        keys: PublicKeys,
        *,
        refresh_margin: dt.timedelta = dt.timedelta(seconds=60),
        poll_timeout: float = 120.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not ksef_token.strip():
            raise ValueError(f"empty KSeF token for context {context_nip}")
        super().__init__(context_nip, api, transport, refresh_margin=refresh_margin,
                         poll_timeout=poll_timeout, sleep=sleep)
        self._ksef_token = ksef_token.strip()
        self._keys = keys

    async def _start(self, challenge: sdk.AuthenticationChallengeResponse
                     ) -> sdk.AuthenticationInitResponse:
        key = await self._keys.get(KSEF_TOKEN_ENCRYPTION)
        body = ksef_token_auth_request(
            required(challenge.challenge, "challenge"),
            self.context_nip,
            encrypted_ksef_token(key.key, self._ksef_token, challenge.timestamp_ms),
            key.public_key_id,
        )
        return await self._transport.call(
            "POST", "/auth/ksef-token", lambda: self._api.submit_ksef_token_auth(body),
            idempotent=False)


class XadesAuth(ChallengeAuth):
    """A context authenticated by an XAdES signature made with its certificate.

    A certificate outside its validity is refused here, before a request is spent (KSeF
    would answer 460 after the challenge and the poll).
    """

    method = "XAdES"

    def __init__(
        self,
        credential: CertificateCredential,
        api: AsyncAuthClient,
        transport: Transport,
        *,
        refresh_margin: dt.timedelta = dt.timedelta(seconds=60),
        poll_timeout: float = 120.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(credential.nip, api, transport, refresh_margin=refresh_margin,
                         poll_timeout=poll_timeout, sleep=sleep)
        self._credential = credential

    def _reason(self, code: int | None, details: tuple[str, ...]) -> AuthFailureReason:
        return reason_of_status(code, details, not_before=self._credential.info.not_before,
                                now=self._transport.now())

    def _check_usable(self) -> None:
        info = self._credential.info
        now = self._transport.now()
        reason: AuthFailureReason
        if now >= info.not_after:
            reason, text = "expired", f"expired on {info.not_after.isoformat()}"
        elif now < info.not_before:
            reason, text = "not-yet-valid", f"is valid only from {info.not_before.isoformat()}"
        else:
            return
        raise KsefAuthError(0, None, f"certificate {info.subject} {text}",
                            operation=f"XAdES authentication of context {self.context_nip}",
                            reason=reason)

    async def _start(self, challenge: sdk.AuthenticationChallengeResponse
                     ) -> sdk.AuthenticationInitResponse:
        signed = signed_auth_token_request(required(challenge.challenge, "challenge"),
                                           self._credential).decode("utf-8")
        try:
            started = await self._transport.call(
                "POST", "/auth/xades-signature",
                lambda: self._api.submit_xades_auth_request(signed), idempotent=False)
        except KsefAuthError:
            raise
        except KsefApiError as exc:  # 400: KSeF refused the document or its signature
            raise KsefAuthError(exc.status, exc.code, exc.description, exc.details,
                                operation=exc.operation,
                                reason=reason_of_exception(exc.code)) from exc
        if started is None:
            raise KsefProtocolError("POST /auth/xades-signature: 202 without a body")
        return started
