from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.ksef.crypto import Digest
from pipeline.ksef.numbers import sha256_b64
from pipeline.ksef.package import PackageFormat
from pipeline.ksef.package import writer as writer_module
from pipeline.ksef.package.writer import (
    ENTRY_NAME_BYTES,
    TAR_MTIME,
    entry_name,
    open_writer,
)

FORMATS = list(PackageFormat)


def build(fmt: PackageFormat, entries: list[tuple[str, bytes]], level: int = 6) -> tuple[
    bytes, Digest
]:
    sink = io.BytesIO()
    writer = open_writer(fmt, sink, level=level)
    for name, data in entries:
        writer.add(name, data)
    digest = writer.finish()
    return sink.getvalue(), digest


def sample_entries(count: int = 12) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        data = (f"<Faktura><P_2>FV/{i}</P_2>" + "<Wiersz>abc</Wiersz>" * (i * 7) + "</Faktura>")
        out.append((entry_name(i + 1, sha256_b64(data.encode())), data.encode()))
    out.append(("random.xml", os.urandom(3000)))
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_inputs_give_identical_bytes_and_digest(fmt: PackageFormat) -> None:
    entries = sample_entries()
    first, digest1 = build(fmt, entries)
    second, digest2 = build(fmt, entries)
    assert first == second
    assert digest1 == digest2 == Digest(sha256_b64(first), len(first))


@pytest.mark.parametrize("fmt", FORMATS)
def test_entry_order_is_the_order_given(fmt: PackageFormat) -> None:
    entries = sample_entries()
    forward, _ = build(fmt, entries)
    backward, _ = build(fmt, entries[::-1])
    assert forward != backward
    if fmt is PackageFormat.ZIP:
        names = zipfile.ZipFile(io.BytesIO(backward)).namelist()
    else:
        with tarfile.open(fileobj=io.BytesIO(backward), mode="r:gz") as tar:
            names = tar.getnames()
    assert names == [name for name, _ in entries[::-1]]


@pytest.mark.parametrize("level", [0, 1, 9])
def test_zip_reads_back_with_fixed_metadata(level: int) -> None:
    entries = sample_entries()
    data, _ = build(PackageFormat.ZIP, entries, level=level)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    for info, (name, content) in zip(archive.infolist(), entries, strict=True):
        assert info.filename == name
        assert archive.read(info) == content
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr >> 16 == 0o100644
        assert info.flag_bits & 0x08 == 0  # no data descriptor: sizes are in the header


@pytest.mark.parametrize("level", [0, 1, 9])
def test_tar_gz_reads_back_with_fixed_metadata(level: int) -> None:
    entries = sample_entries()
    data, _ = build(PackageFormat.TAR_GZ, entries, level=level)
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime
    assert data[3] == 0  # no FNAME/FCOMMENT/FEXTRA flags
    members = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|gz") as tar:  # streaming read
        for member, (name, content) in zip(tar, entries, strict=True):
            assert (member.name, member.size, member.mtime) == (name, len(content), TAR_MTIME)
            assert (member.mode, member.uid, member.gid, member.uname) == (0o644, 0, 0, "")
            assert member.isreg()
            extracted = tar.extractfile(member)
            assert extracted is not None and extracted.read() == content
            members += 1
    assert members == len(entries)
    assert len(gzip.decompress(data)) % (20 * 512) == 0


def test_zip_stores_what_deflate_cannot_shrink() -> None:
    noise = os.urandom(4096)
    text = b"<a>x</a>" * 500
    data, _ = build(PackageFormat.ZIP, [("noise", noise), ("text", text)])
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert [i.compress_type for i in infos] == [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]
    assert infos[0].compress_size == len(noise)
    assert infos[1].compress_size < len(text)


def test_zip64_offsets_are_written_when_the_archive_grows_past_2_gib(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Same code path as a 5 GB package, with the threshold lowered to a few KB.
    monkeypatch.setattr(writer_module, "_ZIP64_LIMIT", 500)
    entries = sample_entries()
    data, _ = build(PackageFormat.ZIP, entries)
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # ZIP64 end record + locator
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    assert [archive.read(n) for n in archive.namelist()] == [c for _, c in entries]
    far = [i for i in archive.infolist() if i.header_offset > 500]
    assert far and all(i.extra.startswith(b"\x01\x00\x08\x00") for i in far)
    if shutil.which("unzip"):
        path = tmp_path / "p.zip"
        path.write_bytes(data)
        result = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "name", ["", "a/b.xml", "..", "x\\y", "ż.xml", "tab\t.xml", "n" * 101]
)
def test_unsafe_or_overlong_names_are_refused(fmt: PackageFormat, name: str) -> None:
    writer = open_writer(fmt, io.BytesIO())
    with pytest.raises(ValueError, match="entry name"):
        writer.add(name, b"<a/>")


@pytest.mark.parametrize("fmt", FORMATS)
def test_duplicate_names_and_late_adds_are_refused(fmt: PackageFormat) -> None:
    writer = open_writer(fmt, io.BytesIO())
    writer.add("a.xml", b"<a/>")
    with pytest.raises(ValueError, match="duplicate"):
        writer.add("a.xml", b"<b/>")
    first = writer.finish()
    assert writer.finish() == first
    with pytest.raises(RuntimeError, match="finished"):
        writer.add("b.xml", b"<b/>")


@pytest.mark.parametrize("fmt", FORMATS)
def test_ordinal_names_are_checked_by_their_prefix_without_a_set(fmt: PackageFormat) -> None:
    writer = open_writer(fmt, io.BytesIO(), ordinal_names=True)
    h = sha256_b64(b"<a/>")
    writer.add(entry_name(1, h), b"<a/>")
    with pytest.raises(ValueError, match="ordinal 00002"):
        writer.add(entry_name(1, h), b"<a/>")  # the first name again
    with pytest.raises(ValueError, match="ordinal 00002"):
        writer.add("b.xml", b"<b/>")
    writer.add(entry_name(2, h), b"<a/>")
    assert writer.entry_count == 2
    assert writer._names == set()  # nothing kept per entry


def test_deflate_level_must_be_valid() -> None:
    with pytest.raises(ValueError, match=r"0\.\.9"):
        open_writer(PackageFormat.ZIP, io.BytesIO(), level=10)


def test_entry_names_are_fixed_length_and_unique_per_position() -> None:
    digest = sha256_b64(b"x")
    names = {entry_name(i, digest) for i in (1, 2, 10_000)}
    assert len(names) == 3
    assert {len(n) for n in names} == {ENTRY_NAME_BYTES}
    assert all(n.endswith(".xml") and "/" not in n and "+" not in n for n in names)


def test_digest_is_of_the_bytes_written_to_the_sink(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    with open(path, "wb") as sink:
        writer = open_writer(PackageFormat.ZIP, sink)
        for name, content in sample_entries():
            writer.add(name, content)
        digest = writer.finish()
    content = path.read_bytes()
    assert digest.size == len(content) == writer.bytes_written
    assert digest.sha256_b64 == sha256_b64(content)
