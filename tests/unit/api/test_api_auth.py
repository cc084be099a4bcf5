from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from ksef_client import models as sdk
from ksef_client.exceptions import KsefApiError as SdkApiError

from pipeline.ksef.crypto import unwrap_key
from pipeline.ksef_api.auth import (
    KSEF_TOKEN_ENCRYPTION,
    SYMMETRIC_KEY_ENCRYPTION,
    PublicKeys,
    TokenAuth,
    select_key,
)
from pipeline.ksef_api.errors import KsefAuthError, KsefProtocolError
from pipeline.ksef_api.transport import Transport
from tests.unit.api.conftest import make_certificate

NIP = "5265877635"
T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
BOTH = [SYMMETRIC_KEY_ENCRYPTION, KSEF_TOKEN_ENCRYPTION]


def iso(when: dt.datetime) -> str:
    return when.isoformat()


def cert(valid_from: dt.datetime, valid_to: dt.datetime, usage: list[str],
         key_id: str = "id") -> sdk.PublicKeyCertificate:
    return sdk.PublicKeyCertificate.from_dict({
        "certificate": make_certificate(valid_from, valid_to), "certificateId": key_id,
        "publicKeyId": key_id, "usage": usage,
        "validFrom": iso(valid_from), "validTo": iso(valid_to)})


class Clock:
    def __init__(self) -> None:
        self.wall = T0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


class FakeAuthApi:
    """Answers like KSeF's auth endpoints; records what it was sent."""

    def __init__(self, clock: Clock, statuses: list[int]) -> None:
        self.clock = clock
        self.statuses = list(statuses)
        self.calls: list[str] = []
        self.sent: list[Any] = []
        self.refuse_refresh: int | bool = False
        self.issued = 0
        self.access_life = dt.timedelta(minutes=15)

    def _token(self, name: str, life: dt.timedelta) -> dict[str, str]:
        self.issued += 1
        return {"token": f"{name}-{self.issued}", "validUntil": iso(self.clock.wall + life)}

    async def get_challenge(self) -> sdk.AuthenticationChallengeResponse:
        self.calls.append("challenge")
        return sdk.AuthenticationChallengeResponse.from_dict({
            "challenge": "20250514-CR-226FB7B000-3ACF9BE4C0-10", "timestamp": iso(T0),
            "timestampMs": 1752236636015, "clientIp": "127.0.0.1"})

    async def submit_ksef_token_auth(self, body: Any) -> sdk.AuthenticationInitResponse:
        self.calls.append("ksef-token")
        self.sent.append(body)
        return sdk.AuthenticationInitResponse.from_dict({
            "referenceNumber": "20250514-AU-2DFC46C000-3AC6D5877F-D4",
            "authenticationToken": self._token("op", dt.timedelta(minutes=10))})

    async def get_auth_status(
        self, ref: str, token: str
    ) -> sdk.AuthenticationOperationStatusResponse:
        self.calls.append("status")
        code = self.statuses.pop(0)
        return sdk.AuthenticationOperationStatusResponse.from_dict({
            "startDate": iso(T0), "status": {"code": code, "description": f"status {code}",
                                             "details": ["why"] if code >= 300 else None}})

    async def redeem_token(self, token: str) -> sdk.AuthenticationTokensResponse:
        self.calls.append("redeem")
        return sdk.AuthenticationTokensResponse.from_dict({
            "accessToken": self._token("access", self.access_life),
            "refreshToken": self._token("refresh", dt.timedelta(days=7))})

    async def refresh_access_token(self, token: str) -> sdk.AuthenticationTokenRefreshResponse:
        self.calls.append("refresh")
        if self.refuse_refresh:
            status = 401 if self.refuse_refresh is True else int(self.refuse_refresh)
            raise SdkApiError(status_code=status, message="API error",
                              response_body={"title": "Refused", "status": status,
                                             "detail": "refresh token revoked"})
        return sdk.AuthenticationTokenRefreshResponse.from_dict({
            "accessToken": self._token("access", self.access_life)})


def setup(statuses: list[int]) -> tuple[TokenAuth, FakeAuthApi, Clock, list[int]]:
    clock = Clock()
    api = FakeAuthApi(clock, statuses)
    fetches = [0]

    async def fetch() -> list[sdk.PublicKeyCertificate]:
        fetches[0] += 1
        return [cert(T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=365), BOTH)]

    transport = Transport(NIP, clock=lambda: 0.0, sleep=clock.sleep, wall=lambda: clock.wall)
    keys = PublicKeys(fetch, wall=lambda: clock.wall)
    auth = TokenAuth(NIP, " ksef-secret ", api, transport, keys,  # type: ignore[arg-type]
                     sleep=clock.sleep)
    return auth, api, clock, fetches


async def test_full_flow_polls_until_authenticated(private_key: rsa.RSAPrivateKey) -> None:
    auth, api, clock, _ = setup([100, 100, 200])
    assert await auth.access_token() == "access-2"
    assert api.calls == ["challenge", "ksef-token", "status", "status", "status", "redeem"]
    assert clock.slept == [0.05, 0.1]
    body = api.sent[0]
    assert body.context_identifier.value == NIP
    plain = unwrap_key(private_key, base64.b64decode(body.encrypted_token))
    assert plain == b"ksef-secret|1752236636015"
    assert await auth.access_token() == "access-2"  # cached, no new calls
    assert len(api.calls) == 6
    assert "ksef-secret" not in repr(auth)


async def test_access_token_is_refreshed_shortly_before_it_expires() -> None:
    auth, api, clock, _ = setup([200])
    first = await auth.access_token()
    clock.wall += dt.timedelta(minutes=14, seconds=30)  # 30 s left < 60 s margin
    second = await auth.access_token()
    assert second != first
    assert api.calls[-1] == "refresh"


async def test_a_token_shorter_lived_than_the_margin_is_used_for_half_its_life() -> None:
    auth, api, clock, _ = setup([200])
    api.access_life = dt.timedelta(seconds=30)
    first = await auth.access_token()
    clock.wall += dt.timedelta(seconds=14)
    assert await auth.access_token() == first
    clock.wall += dt.timedelta(seconds=2)
    second = await auth.access_token()
    assert second != first
    assert api.calls.count("redeem") == 1 and api.calls[-1] == "refresh"


async def test_refused_refresh_falls_back_to_full_authentication() -> None:
    auth, api, clock, _ = setup([200, 200])
    await auth.access_token()
    api.refuse_refresh = True
    clock.wall += dt.timedelta(minutes=20)
    await auth.access_token()
    assert api.calls[-5:] == ["refresh", "challenge", "ksef-token", "status", "redeem"]


async def test_a_refresh_refused_with_400_falls_back_to_full_authentication() -> None:
    """KSeF answers 400 (21301) to the refresh of a login whose certificate was revoked;
    the new login then tells why (revoked), instead of the batch being refused."""
    auth, api, clock, _ = setup([200, 200])
    await auth.access_token()
    api.refuse_refresh = 400
    clock.wall += dt.timedelta(minutes=20)
    await auth.access_token()
    assert api.calls[-5:] == ["refresh", "challenge", "ksef-token", "status", "redeem"]


async def test_invalidated_token_is_replaced_on_next_use() -> None:
    auth, api, _clock, _ = setup([200])
    token = await auth.access_token()
    auth.invalidate(token)
    assert await auth.access_token() != token
    assert api.calls[-1] == "refresh"


async def test_failed_authentication_raises_auth_error_with_ksef_code() -> None:
    auth, _api, _clock, _ = setup([100, 450])
    with pytest.raises(KsefAuthError) as caught:
        await auth.access_token()
    assert caught.value.code == 450
    assert caught.value.details == ("why",)


def test_select_key_takes_the_newest_valid_certificate_for_the_usage() -> None:
    old = cert(T0 - dt.timedelta(days=30), T0 + dt.timedelta(days=30), BOTH, "old")
    new = cert(T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=30), BOTH, "new")
    future = cert(T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=90), BOTH, "future")
    token_only = cert(T0 - dt.timedelta(hours=1), T0 + dt.timedelta(days=9),
                      [KSEF_TOKEN_ENCRYPTION], "token")
    assert select_key([old, new, future], SYMMETRIC_KEY_ENCRYPTION, T0).public_key_id == "new"
    assert select_key([old, token_only], KSEF_TOKEN_ENCRYPTION, T0).public_key_id == "token"
    with pytest.raises(KsefProtocolError, match="no certificate valid now"):
        select_key([token_only, future], SYMMETRIC_KEY_ENCRYPTION, T0)


async def test_public_keys_are_fetched_once_and_again_near_expiry() -> None:
    clock = Clock()
    fetches = [0]

    async def fetch() -> list[sdk.PublicKeyCertificate]:
        fetches[0] += 1
        return [cert(clock.wall - dt.timedelta(days=1), clock.wall + dt.timedelta(hours=1), BOTH)]

    keys = PublicKeys(fetch, wall=lambda: clock.wall)
    await keys.get(SYMMETRIC_KEY_ENCRYPTION)
    await keys.get(KSEF_TOKEN_ENCRYPTION)
    await keys.get(SYMMETRIC_KEY_ENCRYPTION)
    assert fetches[0] == 1
    clock.wall += dt.timedelta(minutes=55)  # within the 10 min margin
    await keys.get(SYMMETRIC_KEY_ENCRYPTION)
    assert fetches[0] == 2
