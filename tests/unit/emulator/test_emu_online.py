"""Interactive sessions: authentication, send, close, KSeF numbers, UPO."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from pipeline.emulator.timefmt import polish_day, utcnow
from pipeline.ksef.fa3.samples import make_invoice, seller_nips
from pipeline.ksef.numbers import ksef_number_is_valid, sha256_b64
from tests.unit.emulator.ksef_test_client import KsefTestClient

UPO_NS = "{http://upo.schematy.mf.gov.pl/KSeF/v4-3}"


def today() -> dt.date:
    return polish_day(utcnow())


async def test_online_session_accepts_invoice_and_issues_upo(client: KsefTestClient) -> None:
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
