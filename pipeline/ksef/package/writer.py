"""Streaming, deterministic ZIP and tar.gz writers.

Both formats are written by hand rather than with `zipfile`/`tarfile`: every byte is then
fixed by this module and the zlib version alone (no timestamps, owners, host OS or stdlib
version), which is what lets any worker rebuild a package byte for byte from Kafka. Output
is strictly sequential (no seeking back), so it can be hashed as it is written.

An invoice is at most a few MB and is given whole, so a ZIP entry's CRC and sizes are
known before its local header is written: no data descriptors are needed.
"""

from __future__ import annotations

import abc
import struct
import zlib
from typing import BinaryIO

from pipeline.ksef.crypto import Digest, HashingWriter
from pipeline.ksef.numbers import b64_to_b64url, sha256_b64
from pipeline.ksef.package.formats import PackageFormat

DEFAULT_LEVEL = 3  # ~1.7x the speed of 6 on invoice XML for ~7% larger ZIPs
MAX_ENTRY_NAME_BYTES = 100  # the ustar name field; also keeps ZIP names short
MAX_ENTRY_BYTES = (1 << 31) - 1  # entries never need ZIP64 sizes (invoices are <= 3 MB)

# ZIP: DOS date 1980-01-01, time 00:00:00; Unix regular file rw-r--r--.
_DOS_DATE = (0 << 9) | (1 << 5) | 1
_DOS_TIME = 0
_UNIX_FILE_ATTR = (0o100644 << 16) & 0xFFFFFFFF
_MADE_BY_UNIX = 3 << 8
_VERSION_DEFLATE = 20
_VERSION_ZIP64 = 45
_ZIP64_LIMIT = (1 << 31) - 1  # like CPython: switch early, some readers treat fields as signed
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_ZIP64_OFFSET_EXTRA = struct.Struct("<HHQ")
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_EOCD = struct.Struct("<IHHHHIIH")
ZIP_ENTRY_OVERHEAD = (
    _LOCAL_HEADER.size + _CENTRAL_HEADER.size + _ZIP64_OFFSET_EXTRA.size
)  # plus the name twice
ZIP_TRAILER_BYTES = _ZIP64_EOCD.size + _ZIP64_LOCATOR.size + _EOCD.size

# tar: ustar blocks, fixed mtime (1980-01-01 like the ZIP), root-less numeric owner 0.
TAR_BLOCK = 512
TAR_RECORD = 20 * TAR_BLOCK
TAR_MTIME = 315_532_800
_GZIP_OS_UNKNOWN = 255


def entry_name(ordinal: int, invoice_hash_b64: str) -> str:
    """Deterministic archive name: position in the package plus the invoice's own hash."""
    return f"{ordinal:05d}-{b64_to_b64url(invoice_hash_b64)}.xml"


ENTRY_NAME_BYTES = len(entry_name(1, sha256_b64(b"")))  # every name entry_name makes, < 10**5


def check_entry_name(name: str) -> bytes:
    """Names are plain printable ASCII file names (no directories), at most 100 bytes."""
    encoded = name.encode("ascii", errors="replace")
    if (
        not name
        or not name.isascii()
        or not name.isprintable()
        or "/" in name
        or "\\" in name
        or name in (".", "..")
        or len(encoded) > MAX_ENTRY_NAME_BYTES
    ):
        raise ValueError(
            f"archive entry name {name!r} must be 1-{MAX_ENTRY_NAME_BYTES} printable ASCII "
            "characters without path separators"
        )
    return encoded


class ArchiveWriter(abc.ABC):
    """Writes entries in the order given to `sink`, hashing the archive on the way."""

    format: PackageFormat

    def __init__(self, sink: BinaryIO, *, level: int = DEFAULT_LEVEL,
                 ordinal_names: bool = False) -> None:
        """`ordinal_names`: every name starts with its entry's ordinal, as `entry_name`
        makes them, so names are unique by their prefix, checked as each comes, and no
        set of them is kept (10,000 names and their set are 1.4 MB)."""
        if not 0 <= level <= 9:
            raise ValueError(f"deflate level must be 0..9, got {level}")
        self.level = level
        self._out = HashingWriter(sink)
        self._ordinal_names = ordinal_names
        self._names: set[bytes] = set()
        self._count = 0
        self._digest: Digest | None = None

    @property
    def bytes_written(self) -> int:
        return self._out.size

    @property
    def entry_count(self) -> int:
        return self._count

    def add(self, name: str, data: bytes, deflated: bytes | None = None) -> None:
        """Append one entry. `deflated`, the raw DEFLATE stream of `data` made earlier
        (the sealed record carries one), spares compressing it again; the archive's bytes
        then follow from the records alone, whatever this machine's zlib."""
        encoded = self._checked_name(name, len(data))
        self._add(encoded, data, deflated)

    @property
    def takes_deflated(self) -> bool:
        """`add_deflated` works here (a ZIP whose entries are deflated)."""
        return False

    def add_deflated(self, name: str, deflated: bytes, size: int, crc32: int) -> None:
        """Append one entry from its raw DEFLATE stream alone, with the size and CRC-32 of
        the bytes it inflates to (recorded when it was deflated): nothing is inflated or
        compressed here. Only where `takes_deflated`."""
        raise TypeError(f"a {self.format.value} archive needs the entries' bytes")

    def _checked_name(self, name: str, size: int) -> bytes:
        if self._digest is not None:
            raise RuntimeError("archive already finished")
        encoded = check_entry_name(name)
        if size > MAX_ENTRY_BYTES:
            raise ValueError(f"entry {name!r} has {size} bytes, more than an archive entry")
        if self._ordinal_names:
            if not encoded.startswith(b"%05d-" % (self._count + 1)):
                raise ValueError(f"archive entry name {name!r} does not start with its "
                                 f"ordinal {self._count + 1:05d}")
        elif encoded in self._names:
            raise ValueError(f"duplicate archive entry name {name!r}")
        else:
            self._names.add(encoded)
        self._count += 1
        return encoded

    def finish(self) -> Digest:
        """Write the trailer; returns SHA-256 (base64) and size of the whole archive."""
        if self._digest is None:
            self._finish()
            self._digest = self._out.digest()
        return self._digest

    @abc.abstractmethod
    def _add(self, name: bytes, data: bytes, deflated: bytes | None) -> None: ...

    @abc.abstractmethod
    def _finish(self) -> None: ...


class ZipWriter(ArchiveWriter):
    """Each entry deflated on its own (stored instead when deflate would not shrink it)."""

    format = PackageFormat.ZIP

    def __init__(self, sink: BinaryIO, *, level: int = DEFAULT_LEVEL,
                 ordinal_names: bool = False) -> None:
        super().__init__(sink, level=level, ordinal_names=ordinal_names)
        self._central = bytearray()

    @property
    def committed_bytes(self) -> int:
        """Exact bytes the entries so far will take in the finished archive (trailer aside)."""
        return self._out.size + len(self._central)

    @property
    def takes_deflated(self) -> bool:
        return self.level > 0

    def add_deflated(self, name: str, deflated: bytes, size: int, crc32: int) -> None:
        if not self.takes_deflated:
            raise TypeError("a ZIP at level 0 stores its entries: it needs their bytes")
        encoded = self._checked_name(name, size)
        # The same entry `add` writes for these bytes: deflated only when it shrinks.
        if len(deflated) >= size:
            raise ValueError(f"entry {name!r}: a deflated stream no smaller than its bytes")
        self._entry(encoded, 8, deflated, size, crc32)

    def _add(self, name: bytes, data: bytes, deflated: bytes | None) -> None:
        method, payload = 0, data
        if self.level:
            packed = deflated if deflated is not None else zlib.compress(
                data, self.level, wbits=-15)
            if len(packed) < len(data):
                method, payload = 8, packed
        self._entry(name, method, payload, len(data), zlib.crc32(data))

    def _entry(self, name: bytes, method: int, payload: bytes, size: int, crc: int) -> None:
        offset = self._out.size
        self._out.write(
            _LOCAL_HEADER.pack(
                0x04034B50, _VERSION_DEFLATE, 0, method, _DOS_TIME, _DOS_DATE,
                crc, len(payload), size, len(name), 0,
            )
        )
        self._out.write(name)
        self._out.write(payload)
        zip64 = offset > _ZIP64_LIMIT
        extra = _ZIP64_OFFSET_EXTRA.pack(1, 8, offset) if zip64 else b""
        version = _VERSION_ZIP64 if zip64 else _VERSION_DEFLATE
        self._central += _CENTRAL_HEADER.pack(
            0x02014B50, _MADE_BY_UNIX | version, version, 0, method, _DOS_TIME, _DOS_DATE,
            crc, len(payload), size, len(name), len(extra), 0, 0, 0,
            _UNIX_FILE_ATTR, 0xFFFFFFFF if zip64 else offset,
        )
        self._central += name
        self._central += extra

    def _finish(self) -> None:
        count = self.entry_count
        cd_offset = self._out.size
        cd_size = len(self._central)
        self._out.write(bytes(self._central))
        self._central = bytearray()
        zip64 = count >= 0xFFFF or cd_offset > _ZIP64_LIMIT or cd_size > _ZIP64_LIMIT
        if zip64:
            eocd64_offset = self._out.size
            self._out.write(
                _ZIP64_EOCD.pack(
                    0x06064B50, _ZIP64_EOCD.size - 12, _MADE_BY_UNIX | _VERSION_ZIP64,
                    _VERSION_ZIP64, 0, 0, count, count, cd_size, cd_offset,
                )
            )
            self._out.write(_ZIP64_LOCATOR.pack(0x07064B50, 0, eocd64_offset, 1))
        short_count = min(count, 0xFFFF)
        self._out.write(
            _EOCD.pack(
                0x06054B50, 0, 0, short_count, short_count,
                0xFFFFFFFF if zip64 else cd_size, 0xFFFFFFFF if zip64 else cd_offset, 0,
            )
        )


class TarGzWriter(ArchiveWriter):
    """One gzip stream over a ustar archive; the gzip header carries no mtime or name."""

    format = PackageFormat.TAR_GZ

    def __init__(self, sink: BinaryIO, *, level: int = DEFAULT_LEVEL,
                 ordinal_names: bool = False) -> None:
        super().__init__(sink, level=level, ordinal_names=ordinal_names)
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15)
        self._crc = 0
        self.tar_bytes = 0
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        self._out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl, _GZIP_OS_UNKNOWN]))

    def _feed(self, raw: bytes) -> None:
        self._crc = zlib.crc32(raw, self._crc)
        self.tar_bytes += len(raw)
        packed = self._deflate.compress(raw)
        if packed:
            self._out.write(packed)

    def _add(self, name: bytes, data: bytes, deflated: bytes | None) -> None:
        self._feed(ustar_header(name, len(data)))
        self._feed(data)
        self._feed(bytes(-len(data) % TAR_BLOCK))

    def _finish(self) -> None:
        end = 2 * TAR_BLOCK
        self._feed(bytes(end + -(self.tar_bytes + end) % TAR_RECORD))
        self._out.write(self._deflate.flush())
        self._out.write(struct.pack("<II", self._crc, self.tar_bytes & 0xFFFFFFFF))


def ustar_header(name: bytes, size: int) -> bytes:
    """POSIX ustar header of a regular file, mode 0644, owner 0:0, fixed mtime."""
    head = (
        name.ljust(100, b"\0")
        + b"0000644\0"
        + b"0000000\0"
        + b"0000000\0"
        + f"{size:011o}\0".encode("ascii")
        + f"{TAR_MTIME:011o}\0".encode("ascii")
    )
    tail = (
        b"0"  # typeflag: regular file
        + bytes(100)  # linkname
        + b"ustar\x0000"
        + bytes(32 + 32)  # uname, gname
        + b"0000000\0" * 2  # devmajor, devminor
        + bytes(155 + 12)  # prefix, padding
    )
    checksum = sum(head) + sum(tail) + 8 * ord(" ")
    header = head + f"{checksum:06o}\0 ".encode("ascii") + tail
    assert len(header) == TAR_BLOCK
    return header


def open_writer(fmt: PackageFormat, sink: BinaryIO, *, level: int = DEFAULT_LEVEL,
                ordinal_names: bool = False) -> ArchiveWriter:
    writer_class: type[ArchiveWriter] = ZipWriter if fmt is PackageFormat.ZIP else TarGzWriter
    return writer_class(sink, level=level, ordinal_names=ordinal_names)
