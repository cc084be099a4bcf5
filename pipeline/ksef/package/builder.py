"""One batch, from the first invoice to the sealed parts and the manifest.

`PackageBuilder` takes plaintext invoices one at a time (the caller decrypts each sealed
record in memory just before `add`), streams them into the archive in the spool directory
(encrypted at rest under a per-batch `SpoolKey` held only in memory) and refuses any
invoice that could make the batch break a KSeF limit. `finish` seals it: a fresh session
key encrypts the parts and is wrapped with the KSeF public key at once; only the wrapped
key reaches the manifest.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.ksef.crypto import Digest, SessionKey, wrap_key
from pipeline.ksef.numbers import sha256_b64
from pipeline.ksef.package.formats import PackageFormat
from pipeline.ksef.package.limits import BatchLimits
from pipeline.ksef.package.manifest import InvoiceEntry, PackageManifest, SourcePosition
from pipeline.ksef.package.parts import encrypt_parts
from pipeline.ksef.package.planner import Fit, PackPlanner
from pipeline.ksef.package.spool import AtomicFile, BatchLock, SpoolKey
from pipeline.ksef.package.writer import (
    DEFAULT_LEVEL,
    ENTRY_NAME_BYTES,
    ArchiveWriter,
    ZipWriter,
    entry_name,
    open_writer,
)


@dataclass(frozen=True)
class PackagedBatch:
    """A sealed batch: the manifest to publish and where its files are on this machine."""

    manifest: PackageManifest
    directory: Path
    package_path: Path | None  # None once the (encrypted) package was removed
    spool_key: SpoolKey | None = None  # what package_path is encrypted under, if kept

    @property
    def part_paths(self) -> tuple[Path, ...]:
        return tuple(self.directory / p.file_name for p in self.manifest.parts)

    def package_chunks(self) -> Iterator[bytes]:
        """The plaintext package, decrypted from the spool chunk by chunk (kept ones only)."""
        if self.package_path is None:
            raise FileNotFoundError(f"batch {self.manifest.batch_id} kept no package")
        if self.spool_key is None:  # a plaintext package sealed from outside the spool
            return iter([self.package_path.read_bytes()])
        return self.spool_key.read(self.package_path)

    def read_package(self) -> bytes:
        return b"".join(self.package_chunks())


class PackageBuilder:
    """Streams one batch into `directory/package.<fmt>`; one builder per batch."""

    def __init__(
        self,
        directory: Path,
        *,
        batch_id: str,
        fmt: PackageFormat = PackageFormat.ZIP,
        level: int = DEFAULT_LEVEL,
        limits: BatchLimits | None = None,
        fsync: bool = True,
    ) -> None:
        self.directory = directory
        self.batch_id = batch_id
        self.limits = limits or BatchLimits()
        self.planner = PackPlanner(self.limits, fmt)
        self._fsync = fsync
        # Held until the parts are sealed (or the batch is dropped): a spool sweep leaves
        # the directory alone meanwhile.
        self._lock = BatchLock(directory)
        self._key = SpoolKey.generate()
        try:
            self._file = AtomicFile(directory / fmt.file_name, fsync=fsync, key=self._key)
        except BaseException:
            self._lock.release()
            raise
        self._writer: ArchiveWriter = open_writer(fmt, self._file.stream, level=level,
                                                 ordinal_names=True)
        self._entries: list[InvoiceEntry] = []
        self._closed = False

    @property
    def format(self) -> PackageFormat:
        return self._writer.format

    @property
    def count(self) -> int:
        return len(self._entries)

    @property
    def bytes_written(self) -> int:
        return self._writer.bytes_written

    def verdict(self, size: int) -> Fit:
        """FITS, FULL (flush this batch first) or NEVER (reject the invoice)."""
        return self.planner.verdict(size, ENTRY_NAME_BYTES)

    def add(
        self, source: SourcePosition, xml: bytes, *, expected_hash: str | None = None,
        deflated: bytes | None = None,
    ) -> InvoiceEntry:
        """Append one invoice; raises BatchFull/InvoiceTooLarge before writing anything."""
        if self._closed:
            raise RuntimeError(f"batch {self.batch_id} is already finished")
        invoice_hash = sha256_b64(xml)
        if expected_hash is not None and expected_hash != invoice_hash:
            raise ValueError(
                f"invoice at {source.topic}/{source.partition}@{source.offset} does not "
                "match its recorded hash"
            )
        return self._append(source, invoice_hash, len(xml),
                            lambda name: self._writer.add(name, xml, deflated))

    @property
    def takes_deflated(self) -> bool:
        """`add_deflated` works for this batch's archive format and level."""
        return self._writer.takes_deflated

    def add_deflated(
        self, source: SourcePosition, deflated: bytes, *, size: int, crc32: int, sha256: str,
    ) -> InvoiceEntry:
        """Append one invoice from its raw DEFLATE stream and the size, CRC-32 and hash
        recorded when it was sealed (an authenticated record): the same entry `add`
        writes for its bytes, without inflating them or hashing them again."""
        if self._closed:
            raise RuntimeError(f"batch {self.batch_id} is already finished")
        if not self.takes_deflated:
            raise TypeError(f"a {self.format.value} archive at this level needs the bytes")
        return self._append(source, sha256, size,
                            lambda name: self._writer.add_deflated(name, deflated, size, crc32))

    def _append(self, source: SourcePosition, invoice_hash: str, size: int,
                write: Callable[[str], None]) -> InvoiceEntry:
        name = entry_name(self.count + 1, invoice_hash)
        self.planner.add(size, len(name))
        try:
            write(name)
        except BaseException:  # e.g. disk full: the archive is torn, the batch is lost
            self.abort()
            raise
        if isinstance(self._writer, ZipWriter):
            self.planner.settle(self._writer.committed_bytes)
        entry = InvoiceEntry(
            source.topic, source.partition, source.offset, invoice_hash, size, name
        )
        self._entries.append(entry)
        return entry

    def finish(
        self,
        public_key: rsa.RSAPublicKey,
        *,
        keep_package: bool = True,
        session: SessionKey | None = None,
    ) -> PackagedBatch:
        """Close the archive, encrypt its parts and build the manifest.

        `session` is for tests only; normally a fresh key is drawn here and dropped as soon
        as the parts are written. With `keep_package=False` the archive (ciphertext under
        the batch's spool key) is deleted once the parts exist (the spool then holds only
        what KSeF alone can decrypt); kept, it is readable through the returned batch only.
        """
        if self._closed:
            raise RuntimeError(f"batch {self.batch_id} is already finished")
        if not self._entries:
            raise ValueError(f"batch {self.batch_id} is empty: KSeF needs at least one invoice")
        self._closed = True
        try:
            try:
                digest = self._writer.finish()
                path = self._file.commit()
            except BaseException:
                self._file.discard()
                raise
            return seal_package(
                path,
                digest,
                spool_key=self._key,
                batch_id=self.batch_id,
                fmt=self.format,
                level=self._writer.level,
                entries=tuple(self._entries),
                public_key=public_key,
                limits=self.limits,
                keep_package=keep_package,
                session=session,
                fsync=self._fsync,
            )
        finally:
            self._lock.release()

    def abort(self) -> None:
        """Drop the unfinished archive (nothing of it stays in the spool)."""
        if not self._closed:
            self._closed = True
            self._file.discard()
            self._lock.release()

    def __enter__(self) -> PackageBuilder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()


def seal_package(
    package: Path,
    digest: Digest,
    *,
    spool_key: SpoolKey | None,
    batch_id: str,
    fmt: PackageFormat,
    level: int,
    entries: tuple[InvoiceEntry, ...],
    public_key: rsa.RSAPublicKey,
    limits: BatchLimits,
    keep_package: bool = True,
    session: SessionKey | None = None,
    fsync: bool = True,
    verify: bool = False,
) -> PackagedBatch:
    """Encrypt an existing package under a fresh key; also the way to repack for a new session.

    `spool_key` is the key the package file is encrypted under (None: a plaintext file,
    never so in the spool). Parts go next to the package. `verify` re-hashes the package
    while splitting (use it when the package was written earlier, e.g. a repack from the
    spool).
    """
    if digest.size > limits.max_archive_bytes:
        raise ValueError(
            f"package of {digest.size} bytes exceeds {limits.max_archive_bytes} bytes allowed"
        )
    session = session or SessionKey.generate()
    encrypted_key = base64.b64encode(wrap_key(public_key, session.key)).decode("ascii")
    parts = encrypt_parts(
        package,
        package.parent,
        session,
        spool_key=spool_key,
        max_part_bytes=limits.max_part_bytes,
        max_parts=limits.max_parts,
        fsync=fsync,
        expected=digest if verify else None,
    )
    manifest = PackageManifest(
        batch_id=batch_id,
        format=fmt,
        package_size=digest.size,
        package_hash=digest.sha256_b64,
        parts=parts,
        encrypted_key=encrypted_key,
        iv=base64.b64encode(session.iv).decode("ascii"),
        entries=entries,
        deflate_level=level,
        zlib_version=zlib.ZLIB_RUNTIME_VERSION,
    )
    if not keep_package:
        package.unlink()
        return PackagedBatch(manifest, package.parent, None)
    return PackagedBatch(manifest, package.parent, package, spool_key)
