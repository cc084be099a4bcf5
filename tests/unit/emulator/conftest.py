"""An in-process emulator per test (fresh data directory, keys made once per run)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipeline.emulator import EmulatorConfig, RunningEmulator
from pipeline.emulator.keys import KeyRing
from pipeline.emulator.reference_client import ReferenceClient

StartEmulator = Callable[..., Any]
ADMIN_TOKEN = "emulator-admin-token-for-tests"  # what `/_emulator/*` calls present


@pytest.fixture(scope="session")
def emulator_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("emulator-keys")
    KeyRing.load(directory)
    return directory / "keys"


@pytest.fixture
async def start_emulator(tmp_path: Path, emulator_keys: Path,
                         ) -> AsyncIterator[StartEmulator]:
    """Factory: `await start_emulator(limits="test", ...)` -> RunningEmulator."""
    running: list[RunningEmulator] = []

    async def start(**overrides: Any) -> RunningEmulator:
        data_dir = overrides.pop("data_dir", tmp_path / f"emulator-{len(running)}")
        if not (data_dir / "keys").exists():
            shutil.copytree(emulator_keys, data_dir / "keys")
        settings: dict[str, Any] = {"limits": "off", "validation_workers": 0,
                                    "admin_tokens": (ADMIN_TOKEN,)}
        settings.update(overrides)
        emu = await RunningEmulator.start(EmulatorConfig(data_dir=data_dir, **settings))
        running.append(emu)
        return emu

    yield start
    for emu in running:
        await emu.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def emulator(start_emulator: StartEmulator) -> RunningEmulator:
    return await start_emulator()  # type: ignore[no-any-return]


@pytest.fixture
def client(emulator: RunningEmulator, http: aiohttp.ClientSession) -> ReferenceClient:
    return ReferenceClient(emulator.base_url, http, emulator.admin_token)
