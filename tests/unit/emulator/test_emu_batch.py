"""Batch sessions: parts, archives, package-level failures and per-invoice results."""

from __future__ import annotations

import base64
import datetime as dt
import os

import aiohttp
import pytest
from yarl import URL

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator import RunningEmulator
from pipeline.emulator.reference_client import ReferenceClient, build_package, split_encrypt
from pipeline.emulator.timefmt import polish_day, utcnow
from pipeline.ksef.crypto import SessionKey
from pipeline.ksef.numbers import ksef_number_is_valid, sha256_b64
from tests.unit.emulator.conftest import StartEmulator

NIP = seller_nips(1, seed=21)[0]


def docs(count: int, prefix: str, nip: str = NIP, day: dt.date | None = None,
         ) -> list[tuple[str, bytes]]:
    issue = day or polish_day(utcnow())
    return [(f"{prefix}-{i:05d}.xml", make_invoice(seller_nip=nip, number=f"{prefix}/{i}",
                                                   issue_date=issue, profile="small", seed=i))
            for i in range(1, count + 1)]


@pytest.mark.parametrize("compression", ["Zip", "TarGz"])
async def test_batch_in_parts_is_accepted(client: ReferenceClient, compression: str) -> None:
    token = await client.authenticate(NIP)
    sent = docs(30, f"B{compression}")
    reference, status = await client.batch(token, sent, part_size=9_000,
                                           compression=compression)
    assert status["status"]["code"] == 200, status
    assert status["invoiceCount"] == status["successfulInvoiceCount"] == 30
    results = await client.invoices(token, reference, page=10)
    assert [r["ordinalNumber"] for r in results] == list(range(1, 31))
    assert {r["invoiceHash"] for r in results} == {sha256_b64(d) for _, d in sent}
    assert all(ksef_number_is_valid(r["ksefNumber"]) for r in results)
    assert {r["invoiceFileName"] for r in results} == {name for name, _ in sent}
    assert len({r["ksefNumber"] for r in results}) == 30


async def test_tampered_part_fails_the_hash_check(client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    _, status = await client.batch(token, docs(12, "TAMPER"), part_size=5_000, tamper=2)
    assert status["status"]["code"] == 405
    assert "part 2" in status["status"]["details"][0]


async def test_part_encrypted_with_another_key_fails_decryption(client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    key = SessionKey.generate()
    package = build_package(docs(3, "WRONGKEY"))
    parts = split_encrypt(package, 4_000, SessionKey.generate())  # not the declared key
    opened = await client.open_batch(token, package, parts, key)
    for request in opened["partUploadRequests"]:
        await client.upload(request, parts[request["ordinalNumber"] - 1])
    reference = opened["referenceNumber"]
    await client.call("POST", f"/sessions/batch/{reference}/close", token=token)
    status = await client.wait_session(token, reference)
    assert status["status"]["code"] in (435, 405), status  # bad padding, or garbage -> hash
    assert status["status"]["code"] == 435 or "decrypted package" in str(status)


async def test_not_an_archive_fails_decompression(client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    key = SessionKey.generate()
    package = b"this is not a zip file" * 100
    parts = split_encrypt(package, 10_000, key)
    opened = await client.open_batch(token, package, parts, key)
    await client.upload(opened["partUploadRequests"][0], parts[0])
    reference = opened["referenceNumber"]
    await client.call("POST", f"/sessions/batch/{reference}/close", token=token)
    assert (await client.wait_session(token, reference))["status"]["code"] == 430


async def test_unwrappable_key_fails_with_415(client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    key = SessionKey.generate()
    package = build_package(docs(2, "BADKEY"))
    parts = split_encrypt(package, 100_000, key)
    body_key = await client.encryption(key)
    body_key["encryptedSymmetricKey"] = base64.b64encode(os.urandom(256)).decode()
    body = {"formCode": {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"},
            "batchFile": {"fileSize": len(package), "fileHash": sha256_b64(package),
                          "fileParts": [{"ordinalNumber": 1, "fileSize": len(parts[0]),
                                         "fileHash": sha256_b64(parts[0])}]},
            "encryption": body_key}
    opened = await client.call("POST", "/sessions/batch", token=token, json=body)
    await client.upload(opened["partUploadRequests"][0], parts[0])
    reference = opened["referenceNumber"]
    await client.call("POST", f"/sessions/batch/{reference}/close", token=token)
    assert (await client.wait_session(token, reference))["status"]["code"] == 415


async def test_invoice_limit_ends_in_420(start_emulator: StartEmulator,
                                         http: aiohttp.ClientSession) -> None:
    emu: RunningEmulator = await start_emulator(max_invoices=5)
    client = ReferenceClient(emu.base_url, http, emu.admin_token)
    token = await client.authenticate(NIP)
    reference, status = await client.batch(token, docs(6, "LIMIT"), part_size=50_000)
    assert status["status"]["code"] == 420
    assert await client.invoices(token, reference) == []


async def test_duplicates_get_440_with_the_original(client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    first = docs(3, "DUP")
    ref1, status1 = await client.batch(token, first, part_size=50_000)
    assert status1["status"]["code"] == 200
    originals = {r["invoiceNumber"]: r["ksefNumber"] for r in await client.invoices(token, ref1)}
    again = [("again.xml", first[1][1]), *docs(1, "FRESH")]
    ref2, status2 = await client.batch(token, again, part_size=50_000)
    assert status2["status"]["code"] == 200
    assert (status2["successfulInvoiceCount"], status2["failedInvoiceCount"]) == (1, 1)
    [failed] = await client.invoices(token, ref2, failed=True)
    assert failed["status"]["code"] == 440
    assert failed["status"]["extensions"] == {"originalSessionReferenceNumber": ref1,
                                              "originalKsefNumber": originals["DUP/2"]}
    assert "ksefNumber" not in failed


async def test_duplicate_inside_one_batch_and_none_accepted(client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    one = docs(1, "TWICE")[0]
    ref, status = await client.batch(token, [one, ("copy.xml", one[1])], part_size=50_000)
    assert (status["successfulInvoiceCount"], status["failedInvoiceCount"]) == (1, 1)
    [copy] = await client.invoices(token, ref, failed=True)
    assert copy["invoiceFileName"] == "copy.xml"
    assert copy["status"]["extensions"]["originalSessionReferenceNumber"] == ref
    _, status = await client.batch(token, [("third.xml", one[1])], part_size=50_000)
    assert status["status"]["code"] == 445


async def test_bad_invoices_are_rejected_with_their_codes(client: ReferenceClient) -> None:
    from pipeline.demo.samples import bad_invoices
    from pipeline.ksef.fa3 import REASONS

    token = await client.authenticate(NIP)
    bad = bad_invoices(polish_day(utcnow()))
    sent = [(f"bad-{i}.xml", data) for i, (_, data) in enumerate(bad)] + docs(1, "GOOD")
    ref, status = await client.batch(token, sent, part_size=200_000)
    assert status["status"]["code"] == 200
    results = {r["invoiceFileName"]: r for r in await client.invoices(token, ref)}
    for i, (reason, _) in enumerate(bad):
        got = results[f"bad-{i}.xml"]["status"]
        assert got["code"] == REASONS[reason][0], (reason, got)
        assert got["details"][0]


async def test_other_sellers_need_permission(client: ReferenceClient) -> None:
    other = seller_nips(2, seed=99)[1]
    token = await client.authenticate(NIP)
    _, status = await client.batch(token, docs(1, "FOREIGN", nip=other), part_size=50_000)
    assert status["status"]["code"] == 445


async def test_late_issue_date_is_marked_offline(client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    yesterday = polish_day(utcnow()) - dt.timedelta(days=1)
    ref, _ = await client.batch(token, docs(1, "LATE", day=yesterday), part_size=50_000)
    [result] = await client.invoices(token, ref)
    assert (result["status"]["code"], result["invoicingMode"]) == (200, "Offline")


async def test_public_host_names_the_upload_urls(start_emulator: StartEmulator,
                                                 http: aiohttp.ClientSession) -> None:
    emu: RunningEmulator = await start_emulator(public_host="localhost")
    client = ReferenceClient(emu.base_url, http, emu.admin_token)
    token = await client.authenticate(NIP)
    reference, status = await client.batch(token, docs(2, "HOST"), part_size=5_000)
    opened = next(x for x in client.exchanges if x.path == "/v2/sessions/batch")
    urls = [URL(r["url"]) for r in opened.body["partUploadRequests"]]
    assert {(u.host, u.port) for u in urls} == {("localhost", emu.emulator.port)}
    assert status["status"]["code"] == 200
    assert URL(status["upo"]["pages"][0]["downloadUrl"]).host == "localhost"
    assert reference == opened.body["referenceNumber"]


async def test_upload_urls_are_signed_and_parts_checked_at_close(
        client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    key = SessionKey.generate()
    package = build_package(docs(4, "SIGN"))
    parts = split_encrypt(package, 3_000, key)
    opened = await client.open_batch(token, package, parts, key)
    first = opened["partUploadRequests"][0]
    forged = {**first, "url": str(URL(first["url"]).update_query(sig="forged"))}
    await client.upload(forged, parts[0], expect=403)
    reference = opened["referenceNumber"]
    missing = await client.call("POST", f"/sessions/batch/{reference}/close", token=token,
                                expect=400)
    assert missing["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21205
    for request in opened["partUploadRequests"]:
        await client.upload(request, parts[request["ordinalNumber"] - 1][:-16])
    short = await client.call("POST", f"/sessions/batch/{reference}/close", token=token,
                              expect=400)
    assert short["exception"]["exceptionDetailList"][0]["exceptionCode"] == 21157


async def test_attachments_need_the_context_permission(client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    day = polish_day(utcnow())
    with_attachment = [(f"att-{i}.xml", make_invoice(seller_nip=NIP, number=f"ATT/{i}",
                                                     issue_date=day, attachment=True))
                       for i in (1, 2)]
    refused, status = await client.batch(token, with_attachment[:1], part_size=50_000)
    assert status["status"]["code"] == 445
    assert [r["status"]["code"] for r in await client.invoices(token, refused)] == [415]
    await client.call("POST", "/testdata/attachment", json={"nip": NIP})
    _, status = await client.batch(token, with_attachment[1:], part_size=50_000)
    assert status["status"]["code"] == 200
