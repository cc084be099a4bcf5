from __future__ import annotations

import dataclasses
import functools
import io
import json
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.ksef.crypto import SessionKey
from pipeline.ksef.numbers import sha256_b64
from pipeline.ksef.package import (
    BatchLimits,
    InvoiceSource,
    PackageBuilder,
    PackagedBatch,
    PackageFormat,
    PackageManifest,
    RebuildMismatch,
    SpoolKey,
    rebuild_package,
    seal_package,
)

Invoices = list[tuple[InvoiceSource, bytes]]
FORMATS = list(PackageFormat)


def pack(
    directory: Path, invoices: Invoices, key: rsa.RSAPublicKey, fmt: PackageFormat, level: int
) -> PackagedBatch:
    with PackageBuilder(directory, batch_id="b", fmt=fmt, level=level, fsync=False) as builder:
        for source, xml in invoices:
            builder.add(source, xml)
        return builder.finish(key, keep_package=False)


def kafka(invoices: Invoices, level: int | None = None
          ) -> Callable[[InvoiceSource], tuple[bytes, bytes | None]]:
    """A fake topic: records by (topic, partition, offset), fetched in any order; with a
    `level`, each record also carries the invoice's DEFLATE stream (as sealed records do)."""
    records = dict(invoices)

    def fetch(source: InvoiceSource) -> tuple[bytes, bytes | None]:
        xml = records[source]
        return xml, None if level is None else zlib.compress(xml, level, wbits=-15)
    return fetch


@pytest.mark.parametrize(("fmt", "level"), [(PackageFormat.ZIP, 6), (PackageFormat.TAR_GZ, 1)])
def test_lost_spool_is_rebuilt_byte_for_byte_from_the_manifest(
    tmp_path: Path,
    make_invoices: Callable[..., Invoices],
    ksef_public_key: rsa.RSAPublicKey,
    fmt: PackageFormat,
    level: int,
) -> None:
    invoices = make_invoices(120)
    original = pack(tmp_path / "a", invoices, ksef_public_key, fmt, level)
    assert original.package_path is None  # the spool copy is gone
    # another worker only has the published record and the topic
    manifest = PackageManifest.from_dict(json.loads(json.dumps(original.manifest.to_dict())))
    target = tmp_path / "b" / fmt.file_name
    target.parent.mkdir()
    key = SpoolKey.generate()
    digest = rebuild_package(manifest, kafka(invoices[::-1]), target, spool_key=key,
                             fsync=False)
    assert (digest.sha256_b64, digest.size) == (manifest.package_hash, manifest.package_size)
    with PackageBuilder(tmp_path / "c", batch_id="b", fmt=fmt, level=level, fsync=False) as b:
        for source, xml in invoices:
            b.add(source, xml)
        again = b.finish(ksef_public_key)
    assert b"".join(key.read(target)) == again.read_package()


def test_deflate_streams_from_the_records_give_the_same_package(
    tmp_path: Path, make_invoices: Callable[..., Invoices], ksef_public_key: rsa.RSAPublicKey
) -> None:
    """Pack reuses each sealed record's DEFLATE stream instead of compressing again: the
    package is byte for byte the one it would have compressed itself, and so is a rebuild."""
    invoices = make_invoices(30)
    fetch = kafka(invoices, level=3)
    with PackageBuilder(tmp_path / "a", batch_id="b", level=3, fsync=False) as builder:
        for source, xml in invoices:
            builder.add(source, xml, deflated=fetch(source)[1])
        reused = builder.finish(ksef_public_key, keep_package=True)
    plain = pack(tmp_path / "p", invoices, ksef_public_key, PackageFormat.ZIP, 3)
    assert reused.manifest.package_hash == plain.manifest.package_hash
    target = tmp_path / "rebuilt.zip"
    key = SpoolKey.generate()
    digest = rebuild_package(reused.manifest, fetch, target, spool_key=key, fsync=False)
    assert digest.sha256_b64 == reused.manifest.package_hash
    assert reused.package_path is not None
    assert b"".join(key.read(target)) == reused.read_package()


def test_a_different_invoice_at_an_offset_stops_the_rebuild(
    tmp_path: Path, make_invoices: Callable[..., Invoices], ksef_public_key: rsa.RSAPublicKey
) -> None:
    invoices = make_invoices(10)
    manifest = pack(tmp_path, invoices, ksef_public_key, PackageFormat.ZIP, 6).manifest
    tampered = dict(invoices)
    tampered[invoices[4][0]] = invoices[4][1].replace(b"FV/", b"FX/")
    target = tmp_path / "rebuilt.zip"
    with pytest.raises(RebuildMismatch, match=r"00005-.*\.xml fetched from sealed/1@1004"):
        rebuild_package(manifest, kafka(list(tampered.items())), target,
                        spool_key=SpoolKey.generate(), fsync=False)
    assert not target.exists() and not list(tmp_path.glob("*.tmp"))


def test_a_package_hash_mismatch_is_reported_and_nothing_is_kept(
    tmp_path: Path, make_invoices: Callable[..., Invoices], ksef_public_key: rsa.RSAPublicKey
) -> None:
    invoices = make_invoices(10)
    manifest = pack(tmp_path, invoices, ksef_public_key, PackageFormat.TAR_GZ, 6).manifest
    # e.g. a worker with another deflate: same invoices, different bytes
    other = dataclasses.replace(manifest, deflate_level=9, zlib_version="0.0-other")
    target = tmp_path / "rebuilt.tar.gz"
    with pytest.raises(RebuildMismatch, match=r"packed with zlib 0\.0-other"):
        rebuild_package(other, kafka(invoices), target, spool_key=SpoolKey.generate(),
                        fsync=False)
    assert not target.exists() and not list(tmp_path.glob("*.tmp"))


def test_rebuilt_package_can_be_resealed_identically_with_the_same_key(
    tmp_path: Path, make_invoices: Callable[..., Invoices], ksef_public_key: rsa.RSAPublicKey
) -> None:
    invoices = make_invoices(200)
    limits = BatchLimits().with_part_bytes(15_000)
    session = SessionKey.generate()
    with PackageBuilder(tmp_path / "a", batch_id="b", limits=limits, fsync=False) as builder:
        for source, xml in invoices:
            builder.add(source, xml)
        first = builder.finish(ksef_public_key, keep_package=False, session=session).manifest
    target = tmp_path / "b" / "package.zip"
    target.parent.mkdir()
    key = SpoolKey.generate()
    digest = rebuild_package(first, kafka(invoices), target, spool_key=key, fsync=False)
    reseal = functools.partial(
        seal_package, target, digest, spool_key=key, batch_id="b", fmt=PackageFormat.ZIP,
        level=first.deflate_level, entries=first.entries, public_key=ksef_public_key,
        limits=limits, fsync=False, verify=True,
    )
    same = reseal(session=session).manifest
    assert same.parts == first.parts and len(same.parts) >= 5
    fresh = reseal().manifest
    assert (fresh.package_hash, fresh.entries) == (first.package_hash, first.entries)
    assert fresh.parts != first.parts and fresh.encrypted_key != first.encrypted_key


def test_a_batch_from_deflated_streams_and_their_crc_alone_is_the_same_package(
    tmp_path: Path, make_invoices: Callable[..., Invoices], ksef_public_key: rsa.RSAPublicKey
) -> None:
    """Pack writes a sealed invoice's deflated stream with the size and CRC-32 its record
    carries, inflating nothing: the package is byte for byte the one built from the
    invoices' bytes, and it opens to those bytes."""
    invoices = make_invoices(30)
    fetch = kafka(invoices, level=3)
    with PackageBuilder(tmp_path / "a", batch_id="b", level=3, fsync=False) as builder:
        assert builder.takes_deflated
        for source, xml in invoices:
            builder.add_deflated(source, fetch(source)[1], size=len(xml),
                                 crc32=zlib.crc32(xml), sha256=sha256_b64(xml))
        streamed = builder.finish(ksef_public_key, keep_package=True)
    plain = pack(tmp_path / "p", invoices, ksef_public_key, PackageFormat.ZIP, 3)
    assert streamed.manifest.package_hash == plain.manifest.package_hash
    with zipfile.ZipFile(io.BytesIO(streamed.read_package())) as archive:
        assert [archive.read(name) for name in archive.namelist()] == [
            xml for _, xml in invoices]


def test_a_stored_zip_or_a_tar_asks_for_the_bytes(tmp_path: Path) -> None:
    for fmt, level in ((PackageFormat.ZIP, 0), (PackageFormat.TAR_GZ, 3)):
        with PackageBuilder(tmp_path / f"{fmt.value}-{level}", batch_id="b", fmt=fmt,
                            level=level, fsync=False) as builder:
            assert not builder.takes_deflated
            with pytest.raises(TypeError):
                builder.add_deflated(InvoiceSource("t", 0, 1), b"x", size=10, crc32=1,
                                     sha256="h")
