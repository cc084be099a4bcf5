"""Interactive sessions: authentication, send, close, KSeF numbers, UPO."""

from __future__ import annotations

import base64
import datetime as dt

import aiohttp
from lxml import etree

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator import RunningEmulator
from pipeline.emulator.reference_client import ReferenceClient
from pipeline.emulator.timefmt import polish_day, utcnow
from pipeline.ksef.crypto import SessionKey, decrypt_cbc, encrypt_cbc
from pipeline.ksef.numbers import ksef_number_is_valid, sha256_b64
from tests.unit.emulator.conftest import StartEmulator

UPO_NS = "{http://upo.schematy.mf.gov.pl/KSeF/v4-3}"


def today() -> dt.date:
    return polish_day(utcnow())


async def test_online_session_accepts_invoice_and_issues_upo(client: ReferenceClient) -> None:
    nip = seller_nips(1, seed=11)[0]
    token = await client.authenticate(nip)
    session = await client.open_online(token)
    xml = make_invoice(seller_nip=nip, number="ON/1", issue_date=today(), profile="small")
    invoice_ref = await client.send(token, session, xml)
    await client.close_online(token, session)
    status = await client.wait_session(token, session.reference)
    assert status["status"]["code"] == 200, status
    assert (status["invoiceCount"], status["successfulInvoiceCount"]) == (1, 1)
    [invoice] = await client.invoices(token, session.reference)
    assert invoice["referenceNumber"] == invoice_ref
    assert invoice["invoiceHash"] == sha256_b64(xml)
    assert invoice["invoicingMode"] == "Online"
    assert ksef_number_is_valid(invoice["ksefNumber"])
    assert invoice["ksefNumber"].startswith(f"{nip}-{today():%Y%m%d}-")
    page = status["upo"]["pages"][0]
    upo = await client.call("GET", f"/sessions/{session.reference}/upo/"
                            f"{page['referenceNumber']}", token=token)
    root = etree.fromstring(upo.encode())
    assert root.findtext(f"{UPO_NS}Dokument/{UPO_NS}NumerKSeFDokumentu") == invoice["ksefNumber"]
    stored = await client.call("GET", f"/invoices/ksef/{invoice['ksefNumber']}", token=token)
    assert stored.encode() == xml


def small(nip: str, number: str, day: dt.date | None = None) -> bytes:
    return make_invoice(seller_nip=nip, number=number, issue_date=day or today(),
                        profile="small")


async def test_technical_correction_once_and_only_for_rejected(client: ReferenceClient) -> None:
    nip = seller_nips(1, seed=12)[0]
    token = await client.authenticate(nip)
    session = await client.open_online(token)
    good = small(nip, "TC/1", today() - dt.timedelta(days=1))
    broken = good.replace(b"<P_2>TC/1</P_2>", b"<P_2>TC/1</P_2><Oops/>")
    assert broken != good
    await client.send(token, session, broken, offline=True)
    accepted = small(nip, "TC/2")
    await client.send(token, session, accepted)
    await client.close_online(token, session)
    await client.wait_session(token, session.reference)
    [rejected] = await client.invoices(token, session.reference, failed=True)
    assert rejected["status"]["code"] == 430
    fix = await client.open_online(token)
    await client.send(token, fix, good, offline=True, corrected=sha256_b64(broken))
    again = await client.send(token, fix, good, offline=True, corrected=sha256_b64(broken),
                              expect=400)
    assert again["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21166
    wrong = await client.send(token, fix, small(nip, "TC/3"), offline=True,
                              corrected=sha256_b64(accepted), expect=400)
    assert wrong["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21167
    await client.close_online(token, fix)
    status = await client.wait_session(token, fix.reference)
    [corrected] = await client.invoices(token, fix.reference)
    assert status["status"]["code"] == 200
    assert (corrected["status"]["code"], corrected["invoicingMode"]) == (200, "Offline")


async def test_send_checks_sizes_hashes_and_decryption(client: ReferenceClient) -> None:
    nip = seller_nips(1, seed=13)[0]
    token = await client.authenticate(nip)
    session = await client.open_online(token)
    xml = small(nip, "SZ/1")
    encrypted = encrypt_cbc(session.key, xml)
    body = {"invoiceHash": sha256_b64(xml), "invoiceSize": len(xml),
            "encryptedInvoiceHash": sha256_b64(encrypted),
            "encryptedInvoiceSize": len(encrypted) + 1,
            "encryptedInvoiceContent": base64.b64encode(encrypted).decode()}
    path = f"/sessions/online/{session.reference}/invoices"
    answer = await client.call("POST", path, token=token, json=body, expect=400)
    assert answer["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21402
    body.update(encryptedInvoiceSize=len(encrypted), invoiceHash=sha256_b64(b"other"))
    answer = await client.call("POST", path, token=token, json=body, expect=400)
    assert answer["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21403
    other = SessionKey.generate()
    garbage = encrypt_cbc(other, xml)
    while True:  # find a foreign key whose ciphertext does not even unpad under ours
        try:
            decrypt_cbc(session.key, garbage)
        except ValueError:
            break
        garbage = encrypt_cbc(other := SessionKey.generate(), xml)
    body.update(invoiceHash=sha256_b64(xml), encryptedInvoiceHash=sha256_b64(garbage),
                encryptedInvoiceSize=len(garbage),
                encryptedInvoiceContent=base64.b64encode(garbage).decode())
    reference = (await client.call("POST", path, token=token, json=body))["referenceNumber"]
    invoice = await client.call("GET", f"/sessions/{session.reference}/invoices/{reference}",
                                token=token)
    assert invoice["status"]["code"] == 435


async def test_session_states_without_invoices_and_limits(
        start_emulator: StartEmulator, http: aiohttp.ClientSession) -> None:
    emu: RunningEmulator = await start_emulator(max_invoices=1)
    client = ReferenceClient(emu.base_url, http, emu.admin_token)
    nip = seller_nips(1, seed=14)[0]
    token = await client.authenticate(nip)
    empty = await client.open_online(token)
    await client.close_online(token, empty)
    status = await client.wait_session(token, empty.reference)
    assert (status["status"]["code"], status["status"]["details"]) == (440,
                                                                       ["Nie przesłano faktur"])
    full = await client.open_online(token)
    await client.send(token, full, small(nip, "LIM/1"))
    over = await client.send(token, full, small(nip, "LIM/2"), expect=400)
    assert over["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21155
    await client.close_online(token, full)
    closed = await client.send(token, full, small(nip, "LIM/3"), expect=400)
    assert closed["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21180


async def test_attachments_are_refused_online(client: ReferenceClient) -> None:
    nip = seller_nips(1, seed=15)[0]
    token = await client.authenticate(nip)
    session = await client.open_online(token)
    xml = make_invoice(seller_nip=nip, number="ATT/1", issue_date=today(), attachment=True)
    await client.send(token, session, xml)
    await client.close_online(token, session)
    assert (await client.wait_session(token, session.reference))["status"]["code"] == 445
    [result] = await client.invoices(token, session.reference)
    assert result["status"]["code"] == 415


async def test_expired_sessions_close_or_cancel(start_emulator: StartEmulator,
                                                http: aiohttp.ClientSession) -> None:
    emu: RunningEmulator = await start_emulator(online_session_hours=1e-9)
    client = ReferenceClient(emu.base_url, http, emu.admin_token)
    nip = seller_nips(1, seed=16)[0]
    token = await client.authenticate(nip)
    idle = await client.open_online(token)
    used = await client.open_online(token)
    expired = await client.send(token, used, small(nip, "EXP/1"), expect=400)
    assert expired["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21180
    await client.admin("sweep")
    assert (await client.wait_session(token, idle.reference))["status"]["code"] == 440
