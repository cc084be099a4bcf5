"""Upload of encrypted batch parts to KSeF's pre-signed URLs, streamed from disk.

Our own code rather than the SDK's: the SDK uploads parts held in memory and refuses
pre-signed URLs on loopback hosts (an SSRF guard), which rules out the local emulator.
Each part is read in 256 KiB chunks off the event loop and sent with an explicit
Content-Length (blob stores refuse chunked uploads); a 100 MB part never sits in memory.
No KSeF token goes to these URLs: the URL itself is the credential, so it is never logged.
A PUT of the same bytes is idempotent, so outages are retried with backoff; 201 is success.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import aiohttp

from pipeline.ksef_api.errors import KsefError, KsefUnavailable, PartUploadError
from pipeline.ksef_api.health import Outcome
from pipeline.ksef_api.results import PartUpload
from pipeline.ksef_api.transport import AttemptFailed, Transport, failure_of_status

CHUNK_BYTES = 1 << 18  # each upload in flight holds a chunk or two (and the socket's buffer)
UPLOADED = frozenset({200, 201})
ENDPOINT = "PUT part-upload"

PartUploaded = Callable[[int], Awaitable[None] | None]


async def _file_chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    stream: BinaryIO = await asyncio.to_thread(path.open, "rb")
    try:
        sent = 0
        while sent < size:
            chunk = await asyncio.to_thread(stream.read, min(CHUNK_BYTES, size - sent))
            if not chunk:
                raise OSError(f"{path} shrank to {sent} bytes during upload")
            sent += len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(stream.close)


class PartUploader:
    """PUTs parts with bounded parallelism through the client's transport (health, retry)."""

    def __init__(
        self,
        transport: Transport,
        *,
        parallelism: int = 4,
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
    ) -> None:
        if parallelism < 1:
            raise ValueError(f"parallelism must be >= 1, got {parallelism}")
        self._transport = transport
        self.parallelism = parallelism
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def upload(self, upload: PartUpload, path: Path, size: int | None = None) -> None:
        """Upload one part file; `size` (the declared size) is checked against the file."""
        actual = _check_file(upload.ordinal, path, size)
        operation = f"upload of part {upload.ordinal}"

        async def attempt() -> None:
            headers = {k: v for k, v in upload.headers.items() if k.lower() != "authorization"}
            headers["Content-Length"] = str(actual)
            try:
                async with self._http().request(
                    upload.method, upload.url, data=_file_chunks(path, actual),
                    headers=headers, allow_redirects=False,
                ) as response:
                    if response.status in UPLOADED:
                        return
                    text = (await response.text(errors="replace"))[:500]
                    raise failure_of_status(
                        operation, response.status, text,
                        retry_after_header=response.headers.get("Retry-After"),
                        now=self._transport.now(), reason=response.reason or "",
                        auth_statuses=(),
                    )
            except aiohttp.ClientConnectorError as exc:
                raise AttemptFailed(
                    KsefUnavailable(f"{operation}: cannot connect ({type(exc).__name__})"),
                    Outcome.UNAVAILABLE, None, sent=False,
                ) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise AttemptFailed(
                    KsefUnavailable(f"{operation}: transfer failed ({type(exc).__name__})"),
                    Outcome.UNAVAILABLE, None,
                ) from exc

        await self._transport.run(ENDPOINT, None, attempt, idempotent=True)

    async def upload_all(
        self,
        uploads: Sequence[PartUpload],
        files: Mapping[int, Path],
        *,
        sizes: Mapping[int, int] | None = None,
        on_uploaded: PartUploaded | None = None,
    ) -> None:
        """Upload every part in `uploads` from `files[ordinal]`, at most `parallelism` at once.

        All parts are attempted even if some fail; then `PartUploadError` lists the failures
        and the ordinals that did go up. `on_uploaded(ordinal)` runs after each success (e.g.
        to record progress so a restarted worker uploads only what is missing).
        """
        missing = sorted(u.ordinal for u in uploads if u.ordinal not in files)
        if missing:
            raise ValueError(f"no file given for part(s) {missing}")
        for upload in uploads:
            _check_file(upload.ordinal, files[upload.ordinal],
                        None if sizes is None else sizes.get(upload.ordinal))
        gate = asyncio.Semaphore(self.parallelism)
        done: list[int] = []
        failures: dict[int, KsefError] = {}

        async def one(upload: PartUpload) -> None:
            async with gate:
                try:
                    await self.upload(upload, files[upload.ordinal])
                except KsefError as exc:
                    failures[upload.ordinal] = exc
                    return
            done.append(upload.ordinal)
            if on_uploaded is not None:
                result = on_uploaded(upload.ordinal)
                if result is not None:
                    await result

        # Let every part finish before raising, so no upload is left running unowned.
        outcomes = await asyncio.gather(*(one(u) for u in uploads), return_exceptions=True)
        unexpected = [o for o in outcomes if isinstance(o, BaseException)]
        if unexpected:
            raise unexpected[0]
        if failures:
            raise PartUploadError(failures, tuple(sorted(done)))


def _check_file(ordinal: int, path: Path, size: int | None) -> int:
    """The file's size, after checking it exists and matches the declared size."""
    if not path.is_file():
        raise FileNotFoundError(f"part {ordinal}: {path} is missing")
    actual = os.stat(path).st_size
    if size is not None and actual != size:
        raise ValueError(f"part {ordinal}: {path} has {actual} bytes, {size} were declared")
    return actual
