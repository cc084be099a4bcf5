"""Binary split of a package file into encrypted parts.

Each part is read back from the spool file chunk by chunk (through the package's
`SpoolKey`: the file itself is ciphertext) and encrypted on its own with
the session key and IV (KSeF decrypts every part separately, then concatenates), so a
100 MB part never sits in memory. Given the same key and IV the parts are identical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.ksef.crypto import (
    BLOCK_BYTES,
    Digest,
    HashingWriter,
    SessionKey,
    encrypt_cbc_chunks,
    read_chunks,
)
from pipeline.ksef.package.manifest import PartInfo, part_file_name
from pipeline.ksef.package.spool import AtomicFile, SpoolKey


def split_ranges(total: int, max_part_bytes: int, max_parts: int) -> list[tuple[int, int]]:
    """(offset, length) of each part: as few parts as allowed, of near-equal size.

    Equal parts upload in parallel in about the same time, instead of 49 full parts
    waiting on nobody and one small straggler.
    """
    if total < 1:
        raise ValueError("cannot split an empty package")
    count = -(-total // max_part_bytes)
    if count > max_parts:
        raise ValueError(
            f"a package of {total} bytes needs {count} parts of at most {max_part_bytes} "
            f"bytes; KSeF allows {max_parts}"
        )
    size = -(-total // count)
    return [(start, min(size, total - start)) for start in range(0, total, size)]


def encrypt_parts(
    package: Path,
    out_dir: Path,
    session: SessionKey,
    *,
    spool_key: SpoolKey | None,
    max_part_bytes: int,
    max_parts: int,
    fsync: bool = True,
    expected: Digest | None = None,
) -> tuple[PartInfo, ...]:
    """Write `part-NN.aes` files to `out_dir`; returns what KSeF is told about each.

    `spool_key` is the key the package file was written under (None: a plaintext file,
    which the spool never holds; for tests and tools). Offsets, sizes and hashes are those
    of the plaintext package.

    With `expected`, the package is verified while it is read (a spool file kept for a
    later repack may have rotted); a mismatch raises ValueError after the parts are written,
    which the caller must then discard.
    """
    total = package.stat().st_size
    if expected is not None and expected.size != total:
        raise ValueError(f"{package} has {total} bytes, the manifest says {expected.size}")
    check = hashlib.sha256()
    parts = []
    with open(package, "rb") as source:
        ranges = split_ranges(total, max_part_bytes, max_parts)
        for ordinal, (offset, length) in enumerate(ranges, start=1):
            source.seek(offset)
            plain = read_chunks(source, length)
            if spool_key is not None:
                plain = spool_key.decrypt(plain, offset)
            if expected is not None:
                plain = _hashed(plain, check)
            with AtomicFile(out_dir / part_file_name(ordinal), fsync=fsync) as target:
                sink = HashingWriter(target.stream)
                for block in encrypt_cbc_chunks(session, plain):
                    sink.write(block)
            digest = sink.digest()
            if digest.size != length + BLOCK_BYTES - length % BLOCK_BYTES:
                raise ValueError(f"{package} changed while it was being split")
            parts.append(PartInfo(ordinal, offset, length, digest.size, digest.sha256_b64))
    if expected is not None and Digest.of_hash(check, total) != expected:
        raise ValueError(f"{package} does not match the recorded package hash")
    return tuple(parts)


def _hashed(chunks: Iterable[bytes], into: hashlib._Hash) -> Iterator[bytes]:
    for chunk in chunks:
        into.update(chunk)
        yield chunk
