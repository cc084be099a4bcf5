"""KSeF's batch ceilings at full size: 10,000 invoices in several parts, and 10,001."""

from __future__ import annotations

import math

import pytest

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator.reference_client import ReferenceClient, build_package, split_encrypt
from pipeline.emulator.timefmt import polish_day, utcnow
from pipeline.ksef.crypto import SessionKey
from pipeline.ksef.numbers import ksef_number_is_valid, sha256_b64
from tests.unit.emulator.conftest import StartEmulator

NIP = seller_nips(1, seed=61)[0]
Docs = list[tuple[str, bytes]]


@pytest.fixture(scope="module")
def ten_thousand() -> Docs:
    day = polish_day(utcnow())
    return [(f"inv-{i:05d}.xml", make_invoice(seller_nip=NIP, number=f"BIG/{i}", issue_date=day,
                                              profile="small", seed=i))
            for i in range(1, 10_001)]


async def test_ten_thousand_invoices_in_parts_then_a_duplicate(
        start_emulator: StartEmulator, http: object, ten_thousand: Docs) -> None:
    emu = await start_emulator(validation_workers=2)
    client = ReferenceClient(emu.base_url, http, emu.admin_token)  # type: ignore[arg-type]
    token = await client.authenticate(NIP)
    package_size = len(build_package(ten_thousand))
    part_size = math.ceil(package_size / 6)
    reference, status = await client.batch(token, ten_thousand, part_size=part_size)
    opened = next(x for x in client.exchanges if x.path == "/v2/sessions/batch")
    assert len(opened.body["partUploadRequests"]) >= 5
    assert status["status"]["code"] == 200, status
    assert status["successfulInvoiceCount"] == status["invoiceCount"] == 10_000
    results = await client.invoices(token, reference, page=1000)
    assert len(results) == 10_000
    assert {r["invoiceHash"] for r in results} == {sha256_b64(doc) for _, doc in ten_thousand}
    assert all(ksef_number_is_valid(r["ksefNumber"]) for r in results)
    assert len({r["ksefNumber"] for r in results}) == 10_000
    assert len(status["upo"]["pages"]) == 1
    original = next(r for r in results if r["invoiceFileName"] == "inv-00042.xml")
    dup_ref, dup_status = await client.batch(token, [("again.xml", ten_thousand[41][1])],
                                             part_size=part_size)
    assert dup_status["status"]["code"] == 445
    [duplicate] = await client.invoices(token, dup_ref, failed=True)
    assert duplicate["status"]["code"] == 440
    assert duplicate["status"]["extensions"]["originalKsefNumber"] == original["ksefNumber"]
    assert duplicate["status"]["extensions"]["originalSessionReferenceNumber"] == reference


async def test_ten_thousand_and_one_invoices_end_in_420(
        start_emulator: StartEmulator, http: object, ten_thousand: Docs) -> None:
    emu = await start_emulator()
    client = ReferenceClient(emu.base_url, http, emu.admin_token)  # type: ignore[arg-type]
    token = await client.authenticate(NIP)
    extra = ("extra.xml", make_invoice(seller_nip=NIP, number="BIG/extra",
                                       issue_date=polish_day(utcnow()), profile="small"))
    reference, status = await client.batch(token, [*ten_thousand, extra], part_size=5_000_000)
    assert status["status"]["code"] == 420
    assert await client.invoices(token, reference) == []


async def test_tampered_part_of_a_large_package(start_emulator: StartEmulator, http: object,
                                                ten_thousand: Docs) -> None:
    emu = await start_emulator()
    client = ReferenceClient(emu.base_url, http, emu.admin_token)  # type: ignore[arg-type]
    token = await client.authenticate(NIP)
    key = SessionKey.generate()
    package = build_package(ten_thousand[:2_000])
    parts = split_encrypt(package, math.ceil(len(package) / 5), key)
    opened = await client.open_batch(token, package, parts, key)
    for request in opened["partUploadRequests"]:
        data = bytearray(parts[request["ordinalNumber"] - 1])
        if request["ordinalNumber"] == 3:
            data[100] ^= 0x01
        await client.upload(request, bytes(data))
    reference = opened["referenceNumber"]
    await client.call("POST", f"/sessions/batch/{reference}/close", token=token, expect=204)
    status = await client.wait_session(token, reference)
    assert status["status"]["code"] == 405
    assert "part 3" in status["status"]["details"][0]
