from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ksef.crypto import Digest, SessionKey, decrypt_cbc_chunks
from pipeline.ksef.numbers import sha256_b64
from pipeline.ksef.package.parts import encrypt_parts, split_ranges

# The package files here are plaintext written by the test (the spool's are not).
split = functools.partial(encrypt_parts, spool_key=None)


@given(total=st.integers(1, 10**10), part=st.integers(1, 10**9))
def test_ranges_cover_the_package_exactly_in_as_few_parts_as_possible(
    total: int, part: int
) -> None:
    needed = -(-total // part)
    if needed > 50:
        with pytest.raises(ValueError, match="KSeF allows 50"):
            split_ranges(total, part, 50)
        return
    ranges = split_ranges(total, part, 50)
    assert len(ranges) == needed
    position = 0
    for offset, length in ranges:
        assert offset == position and 1 <= length <= part
        position += length
    assert position == total
    assert max(r[1] for r in ranges) - min(r[1] for r in ranges) <= needed


def test_empty_package_cannot_be_split() -> None:
    with pytest.raises(ValueError, match="empty"):
        split_ranges(0, 100, 50)


def _decrypt_concat(directory: Path, session: SessionKey, count: int) -> bytes:
    out = b""
    for ordinal in range(1, count + 1):
        ciphertext = (directory / f"part-{ordinal:02d}.aes").read_bytes()
        out += b"".join(decrypt_cbc_chunks(session, [ciphertext[:1000], ciphertext[1000:]]))
    return out


def test_parts_decrypt_and_concatenate_back_to_the_package(tmp_path: Path) -> None:
    package = tmp_path / "package.zip"
    content = os.urandom(123_457)
    package.write_bytes(content)
    session = SessionKey.generate()
    parts = split(package, tmp_path, session, max_part_bytes=20_000, max_parts=50)
    assert len(parts) == 7
    for part in parts:
        data = (tmp_path / part.file_name).read_bytes()
        assert part.file_size == len(data) and part.file_hash == sha256_b64(data)
        assert part.plain_size <= 20_000
        assert part.file_size == part.plain_size + 16 - part.plain_size % 16
    assert _decrypt_concat(tmp_path, session, len(parts)) == content
    assert not list(tmp_path.glob("*.tmp"))


def test_same_key_gives_identical_parts_and_a_fresh_key_different_ones(tmp_path: Path) -> None:
    package = tmp_path / "package.zip"
    package.write_bytes(os.urandom(50_000))
    session = SessionKey.generate()
    first = split(package, tmp_path, session, max_part_bytes=16_000, max_parts=50)
    again = split(package, tmp_path, session, max_part_bytes=16_000, max_parts=50)
    other = split(
        package, tmp_path, SessionKey.generate(), max_part_bytes=16_000, max_parts=50
    )
    assert first == again
    assert [p.file_hash for p in first] != [p.file_hash for p in other]


def test_a_package_that_no_longer_matches_its_hash_is_reported(tmp_path: Path) -> None:
    package = tmp_path / "package.zip"
    content = os.urandom(40_000)
    package.write_bytes(content)
    good = Digest(sha256_b64(content), len(content))
    session = SessionKey.generate()
    split(package, tmp_path, session, max_part_bytes=9_000, max_parts=50, expected=good)
    package.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    with pytest.raises(ValueError, match="does not match"):
        split(
            package, tmp_path, session, max_part_bytes=9_000, max_parts=50, expected=good
        )
    with pytest.raises(ValueError, match=r"has 39999 bytes, the manifest says 40000"):
        package.write_bytes(content[:-1])
        split(
            package, tmp_path, session, max_part_bytes=9_000, max_parts=50, expected=good
        )
