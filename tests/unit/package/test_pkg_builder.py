from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.ksef.crypto import SessionKey, decrypt_cbc_chunks, unwrap_key
from pipeline.ksef.numbers import sha256_b64
from pipeline.ksef.package import (
    BatchLimits,
    Fit,
    InvoiceSource,
    PackageBuilder,
    PackagedBatch,
    PackageFormat,
    PackageManifest,
)
from pipeline.ksef.package.planner import BatchFull, InvoiceTooLarge

Invoices = list[tuple[InvoiceSource, bytes]]
FORMATS = list(PackageFormat)


def pack(
    directory: Path,
    invoices: Invoices,
    public_key: rsa.RSAPublicKey,
    *,
    fmt: PackageFormat = PackageFormat.ZIP,
    limits: BatchLimits | None = None,
    **finish: object,
) -> PackagedBatch:
    with PackageBuilder(directory, batch_id="b-1", fmt=fmt, limits=limits, fsync=False) as b:
        for source, xml in invoices:
            b.add(source, xml)
        return b.finish(public_key, **finish)  # type: ignore[arg-type]


def decrypt_parts(batch: PackagedBatch, private_key: rsa.RSAPrivateKey) -> bytes:
    """What KSeF does: unwrap the key, decrypt every part on its own, concatenate."""
    manifest = batch.manifest
    key = unwrap_key(private_key, base64.b64decode(manifest.encrypted_key))
    session = SessionKey(key, base64.b64decode(manifest.iv))
    return b"".join(
        b"".join(decrypt_cbc_chunks(session, [path.read_bytes()])) for path in batch.part_paths
    )


def archive_contents(fmt: PackageFormat, data: bytes) -> list[tuple[str, bytes]]:
    if fmt is PackageFormat.ZIP:
        archive = zipfile.ZipFile(io.BytesIO(data))
        return [(n, archive.read(n)) for n in archive.namelist()]
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None
            out.append((member.name, extracted.read()))
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_parts_decrypt_to_the_declared_package_holding_every_invoice_in_order(
    tmp_path: Path,
    make_invoices: Callable[..., Invoices],
    ksef_public_key: rsa.RSAPublicKey,
    ksef_private_key: rsa.RSAPrivateKey,
    fmt: PackageFormat,
) -> None:
    invoices = make_invoices(300, lines=30)
    limits = BatchLimits().with_part_bytes(20_000)
    batch = pack(tmp_path, invoices, ksef_public_key, fmt=fmt, limits=limits)
    manifest = batch.manifest
    assert len(manifest.parts) >= 5
    package = decrypt_parts(batch, ksef_private_key)
    assert batch.package_path is not None and package == batch.read_package()
    assert package != batch.package_path.read_bytes()  # encrypted at rest
    assert (sha256_b64(package), len(package)) == (manifest.package_hash, manifest.package_size)
    contents = archive_contents(fmt, package)
    assert [c for _, c in contents] == [xml for _, xml in invoices]
    assert [n for n, _ in contents] == [e.entry_name for e in manifest.entries]
    assert [e.source for e in manifest.entries] == [s for s, _ in invoices]
    assert [e.invoice_hash for e in manifest.entries] == [sha256_b64(x) for _, x in invoices]
    for part, path in zip(manifest.parts, batch.part_paths, strict=True):
        assert (part.file_size, part.file_hash) == (len(path.read_bytes()), sha256_b64(
            path.read_bytes()
        ))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fmt.file_name] + [p.file_name for p in manifest.parts]
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_invoices_give_the_same_package_hash_under_different_keys(
    tmp_path: Path,
    make_invoices: Callable[..., Invoices],
    ksef_public_key: rsa.RSAPublicKey,
    fmt: PackageFormat,
) -> None:
    invoices = make_invoices(50)
    first = pack(tmp_path / "one", invoices, ksef_public_key, fmt=fmt)
    second = pack(tmp_path / "two", invoices, ksef_public_key, fmt=fmt)
    one, two = first.manifest, second.manifest
    assert (one.package_hash, one.package_size) == (two.package_hash, two.package_size)
    assert first.read_package() == second.read_package()
    # at rest each is under its own spool key
    assert (tmp_path / "one" / fmt.file_name).read_bytes() != (
        tmp_path / "two" / fmt.file_name
    ).read_bytes()
    assert one.encrypted_key != two.encrypted_key
    assert one.parts[0].file_hash != two.parts[0].file_hash


def test_open_batch_request_declares_package_parts_and_wrapped_key(
    tmp_path: Path,
    make_invoices: Callable[..., Invoices],
    ksef_public_key: rsa.RSAPublicKey,
    ksef_private_key: rsa.RSAPrivateKey,
) -> None:
    session = SessionKey.generate()
    batch = pack(
        tmp_path, make_invoices(100), ksef_public_key, fmt=PackageFormat.TAR_GZ,
        limits=BatchLimits().with_part_bytes(10_000), session=session,
    )
    body = batch.manifest.open_batch_request(offline_mode=True)
    assert body["formCode"] == {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"}
    assert body["offlineMode"] is True
    declared = body["batchFile"]
    assert declared["fileSize"] == batch.manifest.package_size
    assert declared["fileHash"] == batch.manifest.package_hash
    assert declared["compressionType"] == "TarGz"
    assert [p["ordinalNumber"] for p in declared["fileParts"]] == list(
        range(1, len(batch.part_paths) + 1)
    )
    for part, path in zip(declared["fileParts"], batch.part_paths, strict=True):
        assert part["fileSize"] == path.stat().st_size
        assert part["fileHash"] == sha256_b64(path.read_bytes())
    wrapped = base64.b64decode(body["encryption"]["encryptedSymmetricKey"])
    assert unwrap_key(ksef_private_key, wrapped) == session.key
    assert base64.b64decode(body["encryption"]["initializationVector"]) == session.iv
    published = json.dumps(batch.manifest.to_dict())
    assert base64.b64encode(session.key).decode() not in published
    assert session.key.hex() not in published


def test_manifest_survives_a_json_round_trip_and_rejects_malformed_records(
    tmp_path: Path, make_invoices: Callable[..., Invoices], ksef_public_key: rsa.RSAPublicKey
) -> None:
    manifest = pack(tmp_path, make_invoices(20), ksef_public_key).manifest
    record = json.loads(json.dumps(manifest.to_dict()))
    assert PackageManifest.from_dict(record) == manifest
    record["seller_nip"] = "5265877635"  # the topic record's own fields are ignored
    record["invoices"][0]["invoice_id"] = "x"
    assert PackageManifest.from_dict(record) == manifest
    broken = json.loads(json.dumps(manifest.to_dict()))
    del broken["invoices"][3]["ref"]["offset"]
    with pytest.raises(ValueError, match="invoice ref lacks field 'offset'"):
        PackageManifest.from_dict(broken)
    broken = json.loads(json.dumps(manifest.to_dict()))
    broken["parts"][0]["size"] = "12"
    with pytest.raises(ValueError, match="part field 'size' must be int"):
        PackageManifest.from_dict(broken)
    broken = json.loads(json.dumps(manifest.to_dict()))
    broken["package_size"] += 1
    with pytest.raises(ValueError, match="parts cover"):
        PackageManifest.from_dict(broken)


def test_builder_refuses_to_pass_limits_and_the_batch_stays_usable(
    tmp_path: Path,
    ksef_public_key: rsa.RSAPublicKey,
    ksef_private_key: rsa.RSAPrivateKey,
) -> None:
    limits = BatchLimits(max_invoices=40, max_parts=5, max_part_bytes=30_000)
    builder = PackageBuilder(tmp_path, batch_id="b", limits=limits, fsync=False)
    added = 0
    while builder.verdict(10_000) is Fit.FITS:
        builder.add(InvoiceSource("t", 0, added), os.urandom(10_000))  # worst case: stored
        added += 1
    with pytest.raises(BatchFull):
        builder.add(InvoiceSource("t", 0, added), os.urandom(10_000))
    with pytest.raises(InvoiceTooLarge):
        builder.add(InvoiceSource("t", 0, added), os.urandom(200_000))
    batch = builder.finish(ksef_public_key)
    assert batch.manifest.invoice_count == added == 14
    assert batch.manifest.package_size <= limits.max_archive_bytes
    assert len(batch.manifest.parts) <= limits.max_parts
    assert all(p.plain_size <= limits.max_part_bytes for p in batch.manifest.parts)
    assert decrypt_parts(batch, ksef_private_key) == batch.read_package()


@pytest.mark.parametrize("fmt", FORMATS)
def test_three_megabyte_invoices_are_packed(
    tmp_path: Path,
    ksef_public_key: rsa.RSAPublicKey,
    ksef_private_key: rsa.RSAPrivateKey,
    fmt: PackageFormat,
) -> None:
    big = [(InvoiceSource("t", 1, i), os.urandom(3_000_000)) for i in range(2)]
    batch = pack(tmp_path, big, ksef_public_key, fmt=fmt)
    assert len(batch.manifest.parts) == 1
    package = decrypt_parts(batch, ksef_private_key)
    assert [c for _, c in archive_contents(fmt, package)] == [x for _, x in big]


def test_invoice_must_match_its_recorded_hash(
    tmp_path: Path, ksef_public_key: rsa.RSAPublicKey
) -> None:
    with PackageBuilder(tmp_path, batch_id="b", fsync=False) as builder:
        builder.add(InvoiceSource("t", 0, 1), b"<a/>", expected_hash=sha256_b64(b"<a/>"))
        with pytest.raises(ValueError, match="t/0@2 does not match"):
            builder.add(InvoiceSource("t", 0, 2), b"<b/>", expected_hash=sha256_b64(b"<a/>"))
        assert builder.count == 1


def test_an_aborted_or_empty_batch_leaves_nothing_in_the_spool(
    tmp_path: Path, ksef_public_key: rsa.RSAPublicKey
) -> None:
    with pytest.raises(ValueError, match="empty"), PackageBuilder(
        tmp_path, batch_id="b", fsync=False
    ) as builder:
        builder.finish(ksef_public_key)
    with pytest.raises(KeyError), PackageBuilder(tmp_path, batch_id="b", fsync=False) as builder:
        builder.add(InvoiceSource("t", 0, 1), b"<a/>")
        raise KeyError("crash mid-batch")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_aborts_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ksef_public_key: rsa.RSAPublicKey
) -> None:
    builder = PackageBuilder(tmp_path, batch_id="b", fsync=False)
    builder.add(InvoiceSource("t", 0, 1), b"<a/>")

    def disk_full(name: bytes, data: bytes, deflated: bytes | None) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(builder._writer, "_add", disk_full)
    with pytest.raises(OSError, match="No space"):
        builder.add(InvoiceSource("t", 0, 2), b"<b/>")
    with pytest.raises(RuntimeError, match="already finished"):
        builder.finish(ksef_public_key)
    assert list(tmp_path.iterdir()) == []


def test_plaintext_package_can_be_dropped_once_parts_exist(
    tmp_path: Path,
    make_invoices: Callable[..., Invoices],
    ksef_public_key: rsa.RSAPublicKey,
    ksef_private_key: rsa.RSAPrivateKey,
) -> None:
    batch = pack(tmp_path, make_invoices(30), ksef_public_key, keep_package=False)
    assert batch.package_path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-01.aes"]
    assert sha256_b64(decrypt_parts(batch, ksef_private_key)) == batch.manifest.package_hash


def test_memory_stays_flat_while_a_large_package_is_packed(
    tmp_path: Path, ksef_public_key: rsa.RSAPublicKey
) -> None:
    # 48 MB of invoices (incompressible, so the package is as large) with 4 MB parts.
    tracemalloc.start()
    try:
        with PackageBuilder(
            tmp_path, batch_id="big", limits=BatchLimits().with_part_bytes(4_000_000),
            fsync=False,
        ) as builder:
            for i in range(48):
                builder.add(InvoiceSource("t", 0, i), os.urandom(1_000_000))
            batch = builder.finish(ksef_public_key)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert batch.manifest.package_size > 48_000_000
    assert len(batch.manifest.parts) == 13
    assert peak < 12_000_000, f"peak traced memory {peak} bytes"


def test_zip_batches_fill_by_real_compressed_size_without_passing_limits(
    tmp_path: Path,
    make_invoices: Callable[..., Invoices],
    ksef_public_key: rsa.RSAPublicKey,
) -> None:
    limits = BatchLimits(max_parts=3, max_part_bytes=30_000)
    invoices = iter(make_invoices(400, lines=40))
    builder = PackageBuilder(tmp_path, batch_id="b", limits=limits, fsync=False)
    raw = 0
    for source, xml in invoices:
        if builder.verdict(len(xml)) is not Fit.FITS:
            break
        builder.add(source, xml)
        raw += len(xml)
    manifest = builder.finish(ksef_public_key).manifest
    assert raw > 2 * limits.max_archive_bytes  # far more than raw sizes alone would allow
    assert manifest.package_size <= limits.max_archive_bytes
    assert len(manifest.parts) <= limits.max_parts
    assert limits.max_archive_bytes - manifest.package_size < 4_000  # flushed when full
