"""The XAdES flow against a fake KSeF auth API through the real `Transport`:
challenge -> signed AuthTokenRequest -> poll -> redeem -> refresh, and failures mapped
to a machine-readable reason."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from ksef_client import models as sdk
from ksef_client.exceptions import KsefApiError as SdkApiError
from signxml.xades import XAdESVerifier

from pipeline.credentials import CredentialStore
from pipeline.ksef.credentials import CertificateCredential, TokenCredential
from pipeline.ksef.selfsigned import mint_test_certificate
from pipeline.ksef_api import KsefClient, emulator
from pipeline.ksef_api.auth import TokenAuth, XadesAuth
from pipeline.ksef_api.auth_failures import reason_of_exception, reason_of_status
from pipeline.ksef_api.errors import KsefAuthError, KsefCredentialError
from pipeline.ksef_api.link import KsefClients, KsefSettings
from pipeline.ksef_api.transport import Transport
from tests.unit.api.test_api_auth import NIP, T0, Clock, FakeAuthApi

CHALLENGE = "20250514-CR-226FB7B000-3ACF9BE4C0-10"


class FakeXadesApi(FakeAuthApi):
    """FakeAuthApi plus `POST /auth/xades-signature`, optionally refusing with a code."""

    def __init__(self, clock: Clock, statuses: list[int], details: list[str] | None = None,
                 refuse_code: int | None = None) -> None:
        super().__init__(clock, statuses)
        self.details = details
        self.refuse_code = refuse_code

    async def submit_xades_auth_request(self, signed_xml: str) -> sdk.AuthenticationInitResponse:
        self.calls.append("xades-signature")
        self.sent.append(signed_xml)
        if self.refuse_code is not None:
            raise SdkApiError(status_code=400, message="API error", response_body={
                "exception": {"exceptionDetailList": [{
                    "exceptionCode": self.refuse_code,
                    "exceptionDescription": "Nieprawidłowy podpis.", "details": []}]}})
        return sdk.AuthenticationInitResponse.from_dict({
            "referenceNumber": "20250514-AU-2DFC46C000-3AC6D5877F-D4",
            "authenticationToken": self._token("op", dt.timedelta(minutes=10))})

    async def get_auth_status(
        self, ref: str, token: str
    ) -> sdk.AuthenticationOperationStatusResponse:
        answer = await super().get_auth_status(ref, token)
        if self.details is None or answer.status.code < 300:
            return answer
        return sdk.AuthenticationOperationStatusResponse.from_dict({
            "startDate": T0.isoformat(), "status": {
                "code": answer.status.code, "description": answer.status.description,
                "details": self.details}})


def certificate_credential(key: str = "ec", **dates: dt.datetime) -> CertificateCredential:
    minted = mint_test_certificate(NIP, key=key, now=T0, **dates)  # type: ignore[arg-type]
    return CertificateCredential(NIP, minted.certificate, minted.private_key)


def setup(statuses: list[int], credential: CertificateCredential | None = None,
          **fake: Any) -> tuple[XadesAuth, FakeXadesApi, Clock, CertificateCredential]:
    clock = Clock()
    api = FakeXadesApi(clock, statuses, **fake)
    credential = credential or certificate_credential()
    transport = Transport(NIP, clock=lambda: 0.0, sleep=clock.sleep, wall=lambda: clock.wall)
    auth = XadesAuth(credential, api, transport, sleep=clock.sleep)  # type: ignore[arg-type]
    return auth, api, clock, credential


@pytest.mark.parametrize("key", ["rsa", "ec"])
async def test_full_flow_signs_the_challenge_polls_redeems_and_refreshes(key: str) -> None:
    auth, api, clock, credential = setup([100, 200, 200], certificate_credential(key))
    assert await auth.access_token() == "access-2"
    assert api.calls == ["challenge", "xades-signature", "status", "status", "redeem"]
    assert clock.slept == [0.05]
    signed = api.sent[0].encode()
    pem = credential.certificate.public_bytes(serialization.Encoding.PEM)
    verified = XAdESVerifier().verify(signed, x509_cert=pem, expect_references=2)
    assert CHALLENGE.encode() in verified[0].signed_data
    assert f"<Nip>{NIP}</Nip>".encode() in verified[0].signed_data
    assert await auth.access_token() == "access-2"  # cached
    clock.wall += dt.timedelta(minutes=14, seconds=30)
    assert await auth.access_token() == "access-4"
    assert api.calls[-1] == "refresh"
    api.refuse_refresh = True
    clock.wall += dt.timedelta(minutes=20)
    await auth.access_token()
    assert api.calls[-5:] == ["refresh", "challenge", "xades-signature", "status", "redeem"]
    assert "PRIVATE" not in repr(auth) and repr(auth) == f"XadesAuth(context={NIP})"


@pytest.mark.parametrize(("code", "details", "reason"), [
    (460, ["Certyfikat odwołany."], "revoked"),
    (460, ["Certyfikat zawieszony."], "revoked"),
    (460, ["Nieważny certyfikat."], "expired"),
    (460, ["Niezaufany łańcuch certyfikatów."], "bad-signature"),
    (415, ["Brak przypisanych uprawnień"], "no-permission"),
    (550, ["Spróbuj ponownie"], "other"),
])
async def test_failed_status_is_an_auth_error_with_its_reason(
        code: int, details: list[str], reason: str) -> None:
    auth, api, _clock, _ = setup([100, code], details=details)
    with pytest.raises(KsefAuthError) as caught:
        await auth.access_token()
    assert caught.value.code == code and caught.value.reason == reason
    assert caught.value.details == tuple(details)
    assert "redeem" not in api.calls


async def test_signature_refused_at_submission_is_bad_signature() -> None:
    auth, api, _clock, _ = setup([], refuse_code=9105)
    with pytest.raises(KsefAuthError) as caught:
        await auth.access_token()
    assert caught.value.status == 400 and caught.value.code == 9105
    assert caught.value.reason == "bad-signature"
    assert api.calls == ["challenge", "xades-signature"]  # not resent


@pytest.mark.parametrize(("shift", "reason"), [(dt.timedelta(days=400), "expired"),
                                               (dt.timedelta(days=-3), "not-yet-valid")])
async def test_certificate_outside_its_validity_is_refused_before_sending(
        shift: dt.timedelta, reason: str) -> None:
    auth, api, clock, _ = setup([200])
    clock.wall = T0 + shift
    with pytest.raises(KsefAuthError) as caught:
        await auth.access_token()
    assert caught.value.reason == reason and caught.value.status == 0
    assert api.calls == []  # not even a challenge spent


def test_reason_mapping_uses_the_certificate_dates_for_invalid() -> None:
    later = T0 + dt.timedelta(days=1)
    assert reason_of_status(460, ["Nieważny certyfikat."], not_before=later, now=T0) == \
        "not-yet-valid"
    assert reason_of_status(450, ["Token unieważniony"]) == "revoked"
    assert reason_of_status(450, ["Nieprawidłowy token"]) == "other"
    assert reason_of_exception(9102) == "bad-signature"
    assert reason_of_exception(21111) == "other"


async def test_client_picks_the_method_by_credential_kind_and_switches() -> None:
    token = TokenCredential(NIP, "ksef-secret")
    cert = certificate_credential()
    async with KsefClient(emulator("http://127.0.0.1:9"), NIP, credential=token) as client:
        assert isinstance(client._auth, TokenAuth)
        client.use_credential(token)
        first = client._auth
        client.use_credential(TokenCredential(NIP, "ksef-secret"))
        assert client._auth is first  # the same credential keeps its tokens
        client.use_credential(cert)
        assert isinstance(client._auth, XadesAuth) and client.credential is cert
        with pytest.raises(ValueError, match="given to the client of"):
            client.use_credential(TokenCredential("7010002137", "x"))


async def test_ksef_clients_serve_each_context_from_the_store(tmp_path: Path) -> None:
    minted = mint_test_certificate(NIP, key="ec")
    (tmp_path / "c.pem").write_bytes(minted.certificate_pem())
    key = tmp_path / "k.pem"
    key.write_bytes(minted.key_pem())
    key.chmod(0o600)
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"contexts": {NIP: {"certificate": "c.pem",
                                                     "private_key": "k.pem"}}}))
    store = CredentialStore(creds, None, environ={"KSEF_TOKEN_7010002137": "tok"})
    clients = KsefClients(KsefSettings(api_url="http://127.0.0.1:9"), store=store)
    try:
        seller = clients.client(NIP)
        assert isinstance(seller._auth, XadesAuth)
        assert clients.client(NIP) is seller
        legacy = clients.client("7010002137")
        assert isinstance(legacy._auth, TokenAuth)
        with pytest.raises(LookupError, match="KSEF_CREDENTIALS_FILE"):
            clients.client("1234563218")
        key.chmod(0o644)  # unsafe now: refused, as a KsefError (the stages wait)
        with pytest.raises(KsefCredentialError, match="chmod 600"):
            clients.client(NIP)
    finally:
        await clients.aclose()


async def test_every_context_shares_one_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx loads the CA bundle for each client it builds (~30 ms, ~0.8 MB): one per
    seller per stage, unless the clients share a context."""
    built: list[ssl.SSLContext] = []
    default = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(default(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    sellers = [f"{7010002137 + 11 * i}"[:10] for i in range(20)]
    environ = {f"KSEF_TOKEN_{nip}": "tok" for nip in sellers}
    store = CredentialStore(None, None, environ=environ)
    clients = KsefClients(KsefSettings(api_url="http://127.0.0.1:9"), store=store)
    try:
        made = [clients.client(nip) for nip in sellers if store.get(nip) is not None]
        clients.public()
        assert len(made) >= 10
        assert len(built) == 1
    finally:
        await clients.aclose()
