"""Operator faults (outage, latency, forced errors), rate limits and Latarnia."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import time

import aiohttp
import pytest

from pipeline.cli import emulator_ctl
from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator import RunningEmulator
from pipeline.emulator.reference_client import (
    HttpFailure,
    ReferenceClient,
    build_package,
    split_encrypt,
)
from pipeline.emulator.timefmt import polish_day, utcnow
from pipeline.ksef.crypto import SessionKey
from tests.unit.emulator.conftest import StartEmulator

NIP = seller_nips(1, seed=41)[0]


def invoice(number: str) -> bytes:
    return make_invoice(seller_nip=NIP, number=number, issue_date=polish_day(utcnow()),
                        profile="small")


async def ctl(emu: RunningEmulator, *argv: str) -> object:
    """Run `ksef-pipeline emulator-ctl` (blocking HTTP) off the event loop; parse its JSON."""
    parser = argparse.ArgumentParser()
    emulator_ctl.configure(parser)
    token_file = emu.emulator.config.data_dir / "admin-token"
    if not token_file.exists():
        token_file.write_text(f"tests:{emu.admin_token}\n")
        token_file.chmod(0o600)
    args = parser.parse_args(["--url", emu.api_url, "--admin-token-file", str(token_file),
                              *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = await asyncio.to_thread(emulator_ctl.run, args)
    assert code == 0
    return json.loads(out.getvalue())


async def test_outage_answers_503_and_recovers(emulator: RunningEmulator,
                                               client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    info = await ctl(emulator, "down")
    assert info["faults"]["down"] == "503"  # type: ignore[index]
    refused = await client.call("GET", "/sessions?pageSize=10", token=token, expect=503)
    assert refused["status"] == 503
    latarnia = await client.call("GET", f"{emulator.latarnia_url}/status")
    assert latarnia["status"] == "AVAILABLE"  # Latarnia is separate from the API
    await ctl(emulator, "up")
    await client.call("GET", "/sessions?pageSize=10", token=token)


async def test_refused_mode_drops_connections(emulator: RunningEmulator,
                                              client: ReferenceClient) -> None:
    await ctl(emulator, "down", "--mode", "refuse")
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.call("POST", "/auth/challenge")
    await ctl(emulator, "up")
    await client.call("POST", "/auth/challenge")



async def test_lost_response_acts_then_drops_the_connection(emulator: RunningEmulator,
                                                            client: ReferenceClient) -> None:
    info = await ctl(emulator, "lose-response", "/v2/auth/*", "--count", "2")
    assert info["faults"]["lostResponses"] == {"/v2/auth/*": 2}  # type: ignore[index]
    await client.call("GET", "/security/public-key-certificates")  # not matched: answered
    for _ in range(2):
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.call("POST", "/auth/challenge")
    await client.call("POST", "/auth/challenge")
    info = await ctl(emulator, "info")
    assert info["faults"]["lostResponses"] == {}  # type: ignore[index]

async def test_latency_delays_api_answers(emulator: RunningEmulator,
                                          client: ReferenceClient) -> None:
    await ctl(emulator, "latency", "300")
    started = time.monotonic()
    await client.call("POST", "/auth/challenge")
    assert time.monotonic() - started >= 0.3
    await ctl(emulator, "latency", "0")


async def test_forced_invoice_and_session_failures(emulator: RunningEmulator,
                                                   client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    await ctl(emulator, "fail-next", "550", "--count", "1")
    online = await client.open_online(token)
    await client.send(token, online, invoice("F/1"))
    await client.send(token, online, invoice("F/2"))
    await client.close_online(token, online)
    status = await client.wait_session(token, online.reference)
    assert (status["successfulInvoiceCount"], status["failedInvoiceCount"]) == (1, 1)
    [failed] = await client.invoices(token, online.reference, failed=True)
    assert failed["status"]["code"] == 550
    await ctl(emulator, "fail-next", "500", "--scope", "session")
    _, status = await client.batch(token, [("x.xml", invoice("F/3"))], part_size=10_000)
    assert status["status"]["code"] == 500


async def test_open_batch_limit_gives_429_and_retry_after_works(
        start_emulator: StartEmulator, http: aiohttp.ClientSession) -> None:
    emu = await start_emulator(limits="production", time_scale=60.0)  # a minute lasts 1 s
    client = ReferenceClient(emu.base_url, http, emu.admin_token)
    token = await client.authenticate(NIP)
    key = SessionKey.generate()
    package = build_package([("a.xml", invoice("L/1"))])
    parts = split_encrypt(package, 100_000, key)
    refusal = None
    opened_before = 0
    while refusal is None and opened_before <= 20:  # production: 20 batch opens a minute
        try:
            await client.open_batch(token, package, parts, key)
            opened_before += 1
        except HttpFailure as failure:
            refusal = failure
    assert refusal is not None and refusal.status == 429
    retry_after = int(refusal.headers["Retry-After"])
    assert retry_after >= 1
    await asyncio.sleep(retry_after)
    opened = await client.open_batch(token, package, parts, key)
    assert opened["referenceNumber"]


async def test_latarnia_announcements_versions_and_outage(emulator: RunningEmulator,
                                                          client: ReferenceClient) -> None:
    status_url = f"{emulator.latarnia_url}/status"
    start = await ctl(emulator, "announce", "--category", "FAILURE", "--title", "Awaria API")
    assert (await client.call("GET", status_url))["status"] == "FAILURE"
    event = str(start["eventId"])  # type: ignore[index]
    revised = await ctl(emulator, "announce", "--id", start["id"], "--text", "szczegóły")  # type: ignore[index]
    assert revised["version"] == 2  # type: ignore[index]
    await ctl(emulator, "end", event)
    assert (await client.call("GET", status_url))["status"] == "AVAILABLE"
    messages = await client.call("GET", f"{emulator.latarnia_url}/messages")
    by_type = {m["type"]: m for m in messages}
    assert by_type["FAILURE_START"]["version"] == 3 and by_type["FAILURE_START"]["end"]
    assert by_type["FAILURE_END"]["eventId"] == start["eventId"]  # type: ignore[index]
    later = "2099-01-01T00:00:00+00:00"
    await ctl(emulator, "announce", "--category", "MAINTENANCE", "--start", later)
    status = await client.call("GET", status_url)
    assert status["status"] == "AVAILABLE"
    assert [m["type"] for m in status["messages"]] == ["MAINTENANCE_ANNOUNCEMENT"]
    await ctl(emulator, "latarnia-down")
    await client.call("GET", status_url, expect=503)
    await ctl(emulator, "latarnia-up")
    await ctl(emulator, "announce", "--category", "TOTAL_FAILURE")
    assert (await client.call("GET", status_url))["status"] == "TOTAL_FAILURE"
