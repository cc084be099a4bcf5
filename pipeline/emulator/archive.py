"""Batch packages on disk: decrypt and join the parts, then read the archive entry by entry.

Nothing here holds a whole package in memory: parts are decrypted chunk by chunk into
one plaintext file, and the archive is read one invoice at a time (an entry larger
than any invoice may be is only hashed, never loaded).
"""

from __future__ import annotations

import base64
import hashlib
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.ksef.crypto import HashingWriter, SessionKey, decrypt_cbc_chunks, read_chunks
from pipeline.ksef.package.limits import KSEF_MAX_INVOICE_BYTES

ZIP = "Zip"
TAR_GZ = "TarGz"


class PackageError(Exception):
    """The whole batch fails with session status `code` (405, 415, 420, 430, 435)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class PartFile:
    ordinal: int
    path: Path
    declared_hash: str
    declared_size: int
    uploaded_hash: str | None
    uploaded_size: int | None


@dataclass(frozen=True)
class Entry:
    """One archive member. `data` is None when the member is too large to be an invoice;
    only then is `sha256_b64` computed here (the checks hash the others anyway)."""

    name: str
    data: bytes | None
    size: int
    sha256_b64: str | None


def assemble(parts: list[PartFile], key: SessionKey, out: Path,
             expected_hash: str, expected_size: int) -> None:
    """Check every part, decrypt it and append it to `out`; check the joined package."""
    for part in parts:
        if part.uploaded_hash is None:
            raise PackageError(405, f"part {part.ordinal} was not uploaded")
        if part.uploaded_size != part.declared_size or part.uploaded_hash != part.declared_hash:
            raise PackageError(
                405, f"part {part.ordinal}: uploaded content (size {part.uploaded_size}, "
                f"SHA-256 {part.uploaded_hash}) does not match the declared size "
                f"{part.declared_size} and hash {part.declared_hash}")
    with out.open("wb") as sink:
        writer = HashingWriter(sink)
        for part in parts:
            try:
                with part.path.open("rb") as source:
                    for chunk in decrypt_cbc_chunks(key, read_chunks(source)):
                        writer.write(chunk)
            except ValueError as exc:
                raise PackageError(435, f"part {part.ordinal} could not be decrypted "
                                   f"with the session key: {exc}") from exc
        digest = writer.digest()
    if digest.size != expected_size or digest.sha256_b64 != expected_hash:
        raise PackageError(
            405, f"decrypted package (size {digest.size}, SHA-256 {digest.sha256_b64}) does "
            f"not match the declared size {expected_size} and hash {expected_hash}")


def count_invoices(path: Path, compression: str) -> int:
    try:
        if compression == ZIP:
            with zipfile.ZipFile(path) as archive:
                return sum(1 for info in archive.infolist() if not info.is_dir())
        with tarfile.open(path, "r|gz") as tar:
            return sum(1 for member in tar if member.isfile())
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        raise PackageError(430, f"the package is not a valid {compression} archive: "
                           f"{exc}") from exc


def _read_limited(stream: object, limit: int) -> tuple[bytes | None, int, str | None]:
    """Read a member: its bytes, or (over `limit`) only its size and SHA-256 (base64)."""
    kept: list[bytes] = []
    digest = None
    size = 0
    while True:
        chunk = stream.read(1 << 20)  # type: ignore[attr-defined]
        if not chunk:
            break
        size += len(chunk)
        if digest is None and size <= limit:
            kept.append(chunk)
            continue
        if digest is None:
            digest = hashlib.sha256(b"".join(kept))
            kept.clear()
        digest.update(chunk)
    if digest is None:
        return b"".join(kept), size, None
    return None, size, base64.b64encode(digest.digest()).decode("ascii")


def iter_invoices(path: Path, compression: str, skip: int = 0,
                  limit: int = KSEF_MAX_INVOICE_BYTES) -> Iterator[Entry]:
    """Members in archive order, skipping the first `skip` (already processed) ones."""
    try:
        if compression == ZIP:
            yield from _iter_zip(path, skip, limit)
        else:
            yield from _iter_tar(path, skip, limit)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError,
            NotImplementedError) as exc:
        raise PackageError(430, f"the package could not be decompressed: {exc}") from exc


def _iter_zip(path: Path, skip: int, limit: int) -> Iterator[Entry]:
    with zipfile.ZipFile(path) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        for info in members[skip:]:
            with archive.open(info) as member:
                data, size, sha = _read_limited(member, limit)
            yield Entry(info.filename, data, size, sha)


def _iter_tar(path: Path, skip: int, limit: int) -> Iterator[Entry]:
    seen = 0
    with tarfile.open(path, "r|gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            seen += 1
            if seen <= skip:
                continue
            stream = tar.extractfile(member)
            if stream is None:
                continue
            data, size, sha = _read_limited(stream, limit)
            yield Entry(member.name, data, size, sha)
