"""Part upload against a loopback aiohttp server standing in for the pre-signed store."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pipeline.ksef_api.errors import KsefApiError, KsefAuthError, KsefUnavailable, PartUploadError
from pipeline.ksef_api.health import HealthEvent, Outcome
from pipeline.ksef_api.results import PartUpload
from pipeline.ksef_api.retry import RetryPolicy
from pipeline.ksef_api.transport import Transport
from pipeline.ksef_api.upload import PartUploader


@dataclass
class Store:
    bodies: dict[int, bytes] = field(default_factory=dict)
    headers: dict[int, dict[str, str]] = field(default_factory=dict)
    script: dict[int, list[int]] = field(default_factory=dict)  # statuses to answer first
    active: int = 0
    max_active: int = 0
    hold: asyncio.Event | None = None
    full_at: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)

    async def put(self, request: web.Request) -> web.Response:
        ordinal = int(request.match_info["n"])
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.active == self.full_at:
                self.full.set()
            if self.hold is not None:
                await self.hold.wait()
            body = await request.read()
            pending = self.script.get(ordinal)
            if pending:
                return web.Response(status=pending.pop(0), text="<Error>window closed</Error>")
            self.bodies[ordinal] = body
            self.headers[ordinal] = dict(request.headers)
            return web.Response(status=201)
        finally:
            self.active -= 1


@pytest.fixture
async def store() -> AsyncIterator[tuple[Store, str]]:
    state = Store()
    app = web.Application(client_max_size=64 << 20)
    app.router.add_put("/blob/{n}", state.put)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield state, str(server.make_url("/blob"))
    finally:
        await server.close()


def uploads(base: str, count: int) -> list[PartUpload]:
    return [PartUpload(n, "PUT", f"{base}/{n}?sig=SECRET",
                       MappingProxyType({"x-ms-blob-type": "BlockBlob"}))
            for n in range(1, count + 1)]


def part_files(tmp_path: Path, sizes: list[int]) -> dict[int, Path]:
    files = {}
    for n, size in enumerate(sizes, 1):
        path = tmp_path / f"part-{n:02d}.aes"
        path.write_bytes(os.urandom(size))
        files[n] = path
    return files


def uploader(parallelism: int = 4) -> tuple[PartUploader, list[HealthEvent], list[float]]:
    events: list[HealthEvent] = []
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    transport = Transport("5265877635", observer=events.append, sleep=sleep,
                          policy=RetryPolicy(attempts=3, base_delay=0.25))
    return PartUploader(transport, parallelism=parallelism), events, slept


async def test_parts_are_streamed_with_length_and_without_auth(
    store: tuple[Store, str], tmp_path: Path
) -> None:
    state, base = store
    files = part_files(tmp_path, [3 * (1 << 20) + 5, 1000, 17])
    up, events, _ = uploader()
    seen: list[int] = []

    async def record(ordinal: int) -> None:
        seen.append(ordinal)

    try:
        await up.upload_all(uploads(base, 3), files, sizes={1: files[1].stat().st_size},
                            on_uploaded=record)
    finally:
        await up.aclose()
    for n, path in files.items():
        assert state.bodies[n] == path.read_bytes()
        assert state.headers[n]["Content-Length"] == str(path.stat().st_size)
        assert state.headers[n]["x-ms-blob-type"] == "BlockBlob"
        assert "Authorization" not in state.headers[n]
        assert "chunked" not in state.headers[n].get("Transfer-Encoding", "")
    assert sorted(seen) == [1, 2, 3]
    assert [e.outcome for e in events] == [Outcome.OK] * 3
    assert all("SECRET" not in e.endpoint for e in events)


async def test_parallelism_is_bounded(store: tuple[Store, str], tmp_path: Path) -> None:
    state, base = store
    state.hold = asyncio.Event()
    state.full_at = 2
    files = part_files(tmp_path, [100] * 5)
    up, _, _ = uploader(parallelism=2)
    try:
        task = asyncio.create_task(up.upload_all(uploads(base, 5), files))
        await state.full.wait()
        state.hold.set()
        await task
    finally:
        await up.aclose()
    assert state.max_active == 2
    assert sorted(state.bodies) == [1, 2, 3, 4, 5]


async def test_a_503_is_retried_and_a_403_is_reported_without_failing_the_rest(
    store: tuple[Store, str], tmp_path: Path
) -> None:
    state, base = store
    state.script = {1: [503], 2: [403]}
    files = part_files(tmp_path, [64, 64, 64])
    up, events, slept = uploader()
    try:
        with pytest.raises(PartUploadError) as caught:
            await up.upload_all(uploads(base, 3), files)
    finally:
        await up.aclose()
    error = caught.value
    assert error.uploaded == (1, 3)
    failure = error.failures[2]
    assert isinstance(failure, KsefApiError) and not isinstance(failure, KsefAuthError)
    assert failure.status == 403 and "window closed" in str(failure)
    assert state.bodies[1] == files[1].read_bytes()
    assert slept == [0.25]
    assert sorted(e.outcome.value for e in events) == sorted(
        ["unavailable", "ok", "refused", "ok"])


async def test_unreachable_store_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    files = part_files(tmp_path, [10])
    up, events, slept = uploader()
    try:
        with pytest.raises(PartUploadError) as caught:
            await up.upload_all(uploads(f"http://127.0.0.1:{port}/blob", 1), files)
    finally:
        await up.aclose()
    assert isinstance(caught.value.failures[1], KsefUnavailable)
    assert caught.value.uploaded == ()
    assert slept == [0.25, 0.5]
    assert [e.outcome for e in events] == [Outcome.UNAVAILABLE] * 3


async def test_wrong_or_missing_files_fail_before_any_request(
    store: tuple[Store, str], tmp_path: Path
) -> None:
    state, base = store
    files = part_files(tmp_path, [10, 10])
    up, _, _ = uploader()
    try:
        with pytest.raises(ValueError, match="declared"):
            await up.upload_all(uploads(base, 2), files, sizes={2: 11})
        with pytest.raises(ValueError, match=r"no file given for part\(s\) \[2\]"):
            await up.upload_all(uploads(base, 2), {1: files[1]})
        files[2].unlink()
        with pytest.raises(FileNotFoundError):
            await up.upload_all(uploads(base, 2), files)
    finally:
        await up.aclose()
    assert state.bodies == {}
