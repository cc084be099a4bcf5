"""A fresh in-process emulator per test, and KSeF tokens from its test-data control."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from pipeline.emulator import EmulatorConfig, RunningEmulator
from pipeline.ksef_api import Environment, emulator

ADMIN_TOKEN = "emulator-admin-token-for-api-tests"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def running_emulator(tmp_path: Path) -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(data_dir=tmp_path / "emulator", validation_workers=0,
                            admin_tokens=(ADMIN_TOKEN,))
    config.data_dir.mkdir()
    running = await RunningEmulator.start(config)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def ksef_env(running_emulator: RunningEmulator) -> Environment:
    return emulator(running_emulator.api_url)


@pytest.fixture
def token_for(running_emulator: RunningEmulator) -> Callable[[str], Awaitable[str]]:
    async def issue(nip: str) -> str:
        url = f"{running_emulator.base_url}/_emulator/ksef-tokens"
        async with aiohttp.ClientSession() as http, http.post(
                url, json={"nip": nip}, headers=ADMIN_HEADERS) as r:
            assert r.status == 201, await r.text()
            token: str = (await r.json())["token"]
            return token

    return issue
