"""The emulator's admin endpoints (`/_emulator/*`) answer only to its admin token; the
Latarnia feed and the KSeF API stay as they are."""

from __future__ import annotations

import argparse
from pathlib import Path

import aiohttp
import pytest

from pipeline.cli import emulator_command
from pipeline.emulator import RunningEmulator
from tests.unit.emulator.conftest import ADMIN_TOKEN, StartEmulator

ADMIN_POSTS = ("ksef-tokens", "down", "up", "latency", "fail-next", "lose-response", "reset",
               "sweep", "latarnia/announce", "latarnia/end", "latarnia/down", "latarnia/up",
               "permissions", "certificates/revoke", "clock")


def _bearer(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_without_or_with_a_wrong_token_is_401(
        emulator: RunningEmulator, http: aiohttp.ClientSession) -> None:
    base = emulator.base_url + "/_emulator/"
    for action in ADMIN_POSTS:
        for headers in ({}, _bearer("not-the-admin-token-0123"), {"Authorization": ADMIN_TOKEN}):
            async with http.post(base + action, json={"category": "FAILURE"},
                                 headers=headers) as answer:
                assert answer.status == 401, (action, headers, await answer.text())
    async with http.get(base + "info") as answer:
        assert answer.status == 401
    async with http.post(emulator.base_url + "/%5Femulator/latarnia/announce",
                         json={}) as answer:  # another spelling of the same path
        assert answer.status == 401
    async with http.get(emulator.base_url + "/latarnia/messages") as answer:
        assert answer.status == 200 and await answer.json() == []  # nothing was announced


async def test_admin_with_the_token_needs_json(
        emulator: RunningEmulator, http: aiohttp.ClientSession) -> None:
    url = emulator.base_url + "/_emulator/latarnia/announce"
    async with http.post(url, data=b'{"category": "FAILURE"}',
                         headers={**_bearer(), "Content-Type": "text/plain"}) as answer:
        assert answer.status == 415
    async with http.post(url, json={"category": "FAILURE"}, headers=_bearer()) as answer:
        assert answer.status == 201, await answer.text()
    async with http.get(emulator.base_url + "/_emulator/info", headers=_bearer()) as answer:
        assert answer.status == 200


async def test_no_token_configured_refuses_admin_unless_insecure(
        start_emulator: StartEmulator, http: aiohttp.ClientSession) -> None:
    closed: RunningEmulator = await start_emulator(admin_tokens=())
    async with http.post(closed.base_url + "/_emulator/latarnia/announce", json={},
                         headers=_bearer()) as answer:
        assert answer.status == 403
        assert "--insecure-admin" in (await answer.json())["error"]
    open_: RunningEmulator = await start_emulator(admin_tokens=(), insecure_admin=True)
    async with http.post(open_.base_url + "/_emulator/reset", json={}) as answer:
        assert answer.status == 200
    async with http.post(open_.base_url + "/_emulator/reset", data=b"x",
                         headers={"Content-Type": "text/plain"}) as answer:
        assert answer.status == 415  # a cross-site text/plain POST never passes


def _emulator_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    emulator_command.configure(parser)
    return parser.parse_args(list(argv))


def test_an_admin_token_file_others_may_read_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text("x" * 32 + "\n")
    token_file.chmod(0o644)
    args = _emulator_args("--data-dir", str(tmp_path), "--admin-token-file", str(token_file))
    assert emulator_command.run(args) == 2
    assert "chmod 600" in capsys.readouterr().err
