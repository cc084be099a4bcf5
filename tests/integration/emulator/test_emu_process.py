"""The emulator as a program: `ksef-pipeline emulator` in a subprocess, killed with
SIGKILL in the middle of a batch, restarted on the same data directory."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from pipeline.bearer import write_token_file
from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator.control import admin_token
from pipeline.emulator.reference_client import ReferenceClient
from pipeline.emulator.timefmt import polish_day, utcnow

NIP = seller_nips(1, seed=71)[0]
READY = "KSeF emulator ready: "


async def spawn(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    token_file = data_dir / "admin-token"
    if not token_file.exists():
        write_token_file(token_file)
    command = [sys.executable, "-m", "pipeline.cli", "emulator", "--port", "0",
               "--data-dir", str(data_dir), "--limits", "off", "--workers", "0",
               "--admin-token-file", str(token_file)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=60)
    assert line.startswith(READY), line
    api = line[len(READY):].split()[0]
    return proc, api.removesuffix("/v2")


Start = Callable[[Path], Awaitable[tuple[subprocess.Popen[str], str]]]


@pytest.fixture
async def processes() -> AsyncIterator[Start]:
    started: list[subprocess.Popen[str]] = []

    async def start(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
        proc, url = await spawn(data_dir)
        started.append(proc)
        return proc, url

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


async def test_killed_mid_batch_resumes_and_loses_nothing(
        tmp_path: Path, emulator_keys: Path, processes: Start) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(emulator_keys, data_dir / "keys")
    first, url = await processes(data_dir)
    day = polish_day(utcnow())
    docs = [(f"r-{i:05d}.xml", make_invoice(seller_nip=NIP, number=f"RESTART/{i}",
                                             issue_date=day, profile="small", seed=i))
            for i in range(1, 6_001)]
    async with aiohttp.ClientSession() as http:
        client = ReferenceClient(url, http, admin_token(data_dir / "admin-token"))
        token = await client.authenticate(NIP)
        online = await client.open_online(token)
        await client.send(token, online, make_invoice(seller_nip=NIP, number="RESTART/online",
                                                      issue_date=day, profile="small"))
        await client.close_online(token, online)
        before = await client.wait_session(token, online.reference)
        reference, _ = await client.batch(token, docs, part_size=400_000, wait=False)
        partial: list[dict[str, object]] = []
        while not partial:
            status = await client.call("GET", f"/sessions/{reference}", token=token)
            done = status["successfulInvoiceCount"]
            assert status["status"]["code"] == 150, "finished before it could be interrupted"
            if done > 0:
                partial = await client.invoices(token, reference)
            await asyncio.sleep(0.02)
        first.kill()  # SIGKILL: no shutdown code runs
        first.wait(timeout=30)
    _, url = await processes(data_dir)
    async with aiohttp.ClientSession() as http:
        client = ReferenceClient(url, http, admin_token(data_dir / "admin-token"))
        status = await client.wait_session(token, reference)  # the old JWT still works
        assert status["status"]["code"] == 200
        assert status["successfulInvoiceCount"] == 6_000
        results = await client.invoices(token, reference)
        by_ordinal = {r["ordinalNumber"]: r["ksefNumber"] for r in results}
        assert len(set(by_ordinal.values())) == 6_000
        assert all(by_ordinal[r["ordinalNumber"]] == r["ksefNumber"] for r in partial)
        after = await client.call("GET", f"/sessions/{online.reference}", token=token)
        assert after["upo"]["pages"][0]["referenceNumber"] == \
            before["upo"]["pages"][0]["referenceNumber"]
        page = after["upo"]["pages"][0]["referenceNumber"]
        await client.call("GET", f"/sessions/{online.reference}/upo/{page}", token=token)
