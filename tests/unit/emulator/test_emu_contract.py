"""Every answer of every implemented endpoint against the official OpenAPI schemas, and
every UPO against MF's UPO XSD."""

from __future__ import annotations

import base64

import aiohttp
import pytest
from lxml import etree

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator.reference_client import HttpFailure, ReferenceClient
from pipeline.emulator.timefmt import polish_day, utcnow
from tests.unit.emulator import contract
from tests.unit.emulator.conftest import StartEmulator

pytestmark = pytest.mark.skipif(not contract.SPEC_PATH.exists(),
                                reason=f"official open-api.json not found at {contract.DOCS}")

NIP = seller_nips(1, seed=31)[0]


def upo_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(contract.DOCS / "faktury/upo/schemy/upo-v4-3.xsd")))


def invoice(number: str) -> bytes:
    return make_invoice(seller_nip=NIP, number=number, issue_date=polish_day(utcnow()),
                        profile="small")


async def exercise(client: ReferenceClient) -> list[str]:
    """Drive every implemented endpoint once; returns the UPO documents seen."""
    token = await client.authenticate(NIP)
    await client.call("POST", "/tokens", token=token,
                      json={"permissions": ["InvoiceWrite"], "description": "contract test"})
    tokens = await client.call("POST", "/auth/token/redeem", token=token, expect=401)
    assert tokens["status"] == 401
    online = await client.open_online(token)
    invoice_ref = await client.send(token, online, invoice("C/1"))
    await client.send(token, online, invoice("C/1"))  # a duplicate, to list a failure
    await client.close_online(token, online)
    status = await client.wait_session(token, online.reference)
    ref = online.reference
    await client.call("GET", f"/sessions/{ref}/invoices?pageSize=10", token=token)
    await client.call("GET", f"/sessions/{ref}/invoices/failed?pageSize=10", token=token)
    detail = await client.call("GET", f"/sessions/{ref}/invoices/{invoice_ref}", token=token)
    upos = [await client.call("GET", f"/sessions/{ref}/upo/{p['referenceNumber']}",
                              token=token) for p in status["upo"]["pages"]]
    upos.append(await client.call("GET", f"/sessions/{ref}/invoices/{invoice_ref}/upo",
                                  token=token))
    upos.append(await client.call("GET", f"/sessions/{ref}/invoices/ksef/"
                                  f"{detail['ksefNumber']}/upo", token=token))
    async with client.http.get(detail["upoDownloadUrl"]) as resp:  # pre-signed, no token
        upos.append(await resp.text())
    await client.call("GET", f"/invoices/ksef/{detail['ksefNumber']}", token=token)
    batch_ref, _ = await client.batch(token, [("b.xml", invoice("C/2"))], part_size=2_000)
    await client.call("GET", "/sessions?sessionType=Batch&pageSize=10", token=token)
    await client.call("GET", "/sessions?pageSize=10&statuses=Succeeded", token=token)
    await client.call("GET", f"/sessions/{batch_ref}", token=token)
    await client.call("POST", "/auth/token/refresh", token=token, expect=401)
    await client.call("GET", "/sessions/20250101-SO-0000000000-0000000000-00", token=token,
                      expect=400)
    await client.call("POST", "/sessions/online", token=token, json={"formCode": {}},
                      headers={"X-Error-Format": "problem-details"}, expect=400)
    await client.call("GET", "/sessions?pageSize=10", expect=401)
    return [u for u in upos if isinstance(u, str)]


async def test_responses_match_the_official_schemas(client: ReferenceClient) -> None:
    upos = await exercise(client)
    checked = {contract.validate(x.method, x.path, x.status, x.content_type, x.body)
               for x in client.exchanges
               if x.path.startswith("/v2/") and "json" in x.content_type}
    expected = {
        "POST /auth/challenge 200", "POST /auth/ksef-token 202", "GET /auth/{referenceNumber} 200",
        "POST /auth/token/redeem 200", "POST /auth/token/redeem 401",
        "POST /auth/token/refresh 401", "GET /security/public-key-certificates 200",
        "POST /tokens 202", "POST /sessions/online 201", "POST /sessions/online 400",
        "POST /sessions/online/{referenceNumber}/invoices 202", "POST /sessions/batch 201",
        "GET /sessions 200", "GET /sessions 401", "GET /sessions/{referenceNumber} 200",
        "GET /sessions/{referenceNumber} 400", "GET /sessions/{referenceNumber}/invoices 200",
        "GET /sessions/{referenceNumber}/invoices/failed 200",
        "GET /sessions/{referenceNumber}/invoices/{invoiceReferenceNumber} 200",
    }
    assert expected <= checked, expected - checked
    schema = upo_schema()
    assert len(upos) == 4
    for document in upos:
        schema.assertValid(etree.fromstring(document.encode("utf-8")))


async def test_refresh_gives_a_working_access_token(client: ReferenceClient) -> None:
    nip = seller_nips(2, seed=32)[1]
    answer = await client.admin("ksef-tokens", {"nip": nip})
    challenge = await client.call("POST", "/auth/challenge")
    assert challenge["clientIp"] == "127.0.0.1"
    access = await client.authenticate(nip, answer["token"])
    redeem = [x for x in client.exchanges if x.path.endswith("/auth/token/redeem")][-1]
    refreshed = await client.call("POST", "/auth/token/refresh",
                                  token=redeem.body["refreshToken"]["token"])
    contract.validate("POST", "/v2/auth/token/refresh", 200, "application/json", refreshed)
    new_access = refreshed["accessToken"]["token"]
    assert new_access != access
    await client.call("GET", "/sessions?pageSize=10", token=new_access)


async def test_too_many_requests_answer(start_emulator: StartEmulator,
                                        http: aiohttp.ClientSession) -> None:
    emu = await start_emulator(limits="production")
    client = ReferenceClient(emu.base_url, http, emu.admin_token)
    token = await client.authenticate(NIP)
    with pytest.raises(HttpFailure) as refused:
        for _ in range(6):  # GET /sessions: 5 per second
            await client.call("GET", "/sessions?pageSize=10", token=token)
    assert refused.value.status == 429
    assert int(refused.value.headers["Retry-After"]) >= 1
    contract.validate("GET", "/v2/sessions", 429, "application/json", refused.value.body)


async def test_wrong_token_context_and_timestamp_fail_authentication(
        client: ReferenceClient) -> None:
    nip, other = seller_nips(2, seed=33)
    token = (await client.admin("ksef-tokens", {"nip": nip}))["token"]
    for context, stamp_shift, expected in ((other, 0, 415), (nip, 1, 450)):
        operation, status = await client.start_auth(context, token, stamp_shift=stamp_shift)
        assert status["status"]["code"] == expected
        check = client.exchanges[-1]
        contract.validate("GET", check.path, 200, check.content_type, status)
        await client.call("POST", "/auth/token/redeem", token=operation, expect=400)
    used = next(x.body["challenge"] for x in reversed(client.exchanges)
                if x.path == "/v2/auth/challenge")
    reused = await client.call("POST", "/auth/ksef-token", expect=400, json={
        "challenge": used, "contextIdentifier": {"type": "Nip", "value": nip},
        "encryptedToken": base64.b64encode(b"x").decode()})
    assert reused["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21111
