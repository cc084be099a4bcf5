from __future__ import annotations

import base64
import dataclasses
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.ksef.crypto import SessionKey, decrypt_cbc, unwrap_key
from pipeline.ksef.package.formats import PackageFormat
from pipeline.ksef.package.manifest import InvoiceEntry, PackageManifest, PartInfo
from pipeline.ksef_api.bodies import (
    BatchSpec,
    PartSpec,
    batch_open_request,
    encrypted_ksef_token,
    ksef_token_auth_request,
    online_open_request,
    send_invoice_request,
)
from pipeline.ksef_api.manifest import batch_spec, part_files, part_sizes


def h(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


SPEC = BatchSpec(
    file_size=250,
    file_hash=h(b"package"),
    parts=(PartSpec(2, 112, h(b"p2")), PartSpec(1, 160, h(b"p1"))),
    encrypted_key=b"\x01" * 256,
    iv=b"\x02" * 16,
    compression_type="Zip",
)


def test_batch_open_body_matches_the_contract() -> None:
    body = batch_open_request(SPEC).to_dict()
    assert body == {
        "formCode": {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"},
        "batchFile": {
            "fileSize": 250,
            "fileHash": h(b"package"),
            "compressionType": "Zip",
            "fileParts": [
                {"ordinalNumber": 1, "fileSize": 160, "fileHash": h(b"p1")},
                {"ordinalNumber": 2, "fileSize": 112, "fileHash": h(b"p2")},
            ],
        },
        "encryption": {
            "encryptedSymmetricKey": base64.b64encode(b"\x01" * 256).decode(),
            "initializationVector": base64.b64encode(b"\x02" * 16).decode(),
        },
    }


def test_offline_mode_and_key_id_are_sent_when_set() -> None:
    spec = dataclasses.replace(SPEC, offline_mode=True, public_key_id="k" * 44)
    body = batch_open_request(spec).to_dict()
    assert body["offlineMode"] is True
    assert body["encryption"]["publicKeyId"] == "k" * 44


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"parts": (PartSpec(1, 10, h(b"a")), PartSpec(3, 10, h(b"b")))}, "ordinals"),
        ({"parts": ()}, "1..50 parts"),
        ({"parts": tuple(PartSpec(i, 1, h(b"x")) for i in range(1, 52))}, "1..50 parts"),
        ({"parts": (PartSpec(1, 0, h(b"a")),)}, "size 0"),
        ({"parts": (PartSpec(1, 5, "not-a-hash"),)}, "part 1 hash"),
        ({"file_hash": base64.b64encode(b"short").decode()}, "32 bytes"),
        ({"file_size": 5_000_000_001}, "package size"),
        ({"iv": b"\x00" * 12}, "IV"),
        ({"encrypted_key": b""}, "wrapped session key"),
        ({"compression_type": "Rar"}, "compression type"),
    ],
)
def test_what_ksef_would_refuse_fails_before_sending(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        batch_open_request(dataclasses.replace(SPEC, **change))  # type: ignore[arg-type]


def test_send_invoice_body_decrypts_back_and_describes_both_forms() -> None:
    key = SessionKey.generate()
    invoice = b"<Faktura>" + b"x" * 1000 + b"</Faktura>"
    body = send_invoice_request(key, invoice, offline_mode=True,
                                hash_of_corrected_invoice=h(b"original"))
    ciphertext = base64.b64decode(body.encrypted_invoice_content)
    assert decrypt_cbc(key, ciphertext) == invoice
    assert (body.invoice_hash, body.invoice_size) == (h(invoice), len(invoice))
    assert (body.encrypted_invoice_hash, body.encrypted_invoice_size) == (
        h(ciphertext), len(ciphertext))
    wire = body.to_dict()
    assert wire["offlineMode"] is True
    assert wire["hashOfCorrectedInvoice"] == h(b"original")


def test_send_invoice_refuses_empty_oversize_and_bad_correction_hash() -> None:
    key = SessionKey.generate()
    with pytest.raises(ValueError, match="empty"):
        send_invoice_request(key, b"")
    with pytest.raises(ValueError, match="exceeds"):
        send_invoice_request(key, b"x" * 3_000_001)
    with pytest.raises(ValueError, match="hashOfCorrectedInvoice"):
        send_invoice_request(key, b"<a/>", hash_of_corrected_invoice="abc")


def test_online_open_body() -> None:
    body = online_open_request(b"\x05" * 256, b"\x06" * 16).to_dict()
    assert body["formCode"]["systemCode"] == "FA (3)"
    assert base64.b64decode(body["encryption"]["initializationVector"]) == b"\x06" * 16
    with pytest.raises(ValueError, match="IV"):
        online_open_request(b"\x05" * 256, b"\x06" * 8)


def test_ksef_token_is_encrypted_for_the_mf_key(private_key: rsa.RSAPrivateKey) -> None:
    encrypted = encrypted_ksef_token(private_key.public_key(), "secret-token", 1752236636015)
    assert unwrap_key(private_key, base64.b64decode(encrypted)) == b"secret-token|1752236636015"
    body = ksef_token_auth_request("20250514-CR-226FB7B000-3ACF9BE4C0-10", "5265877635",
                                   encrypted).to_dict()
    assert body["contextIdentifier"] == {"type": "Nip", "value": "5265877635"}
    assert body["encryptedToken"] == encrypted
    assert "secret-token" not in repr(body)


def _manifest() -> PackageManifest:
    return PackageManifest(
        batch_id="b1",
        format=PackageFormat.TAR_GZ,
        package_size=300,
        package_hash=h(b"pkg"),
        parts=(PartInfo(1, 0, 200, 208, h(b"e1")), PartInfo(2, 200, 100, 112, h(b"e2"))),
        encrypted_key=base64.b64encode(b"\x07" * 256).decode(),
        iv=base64.b64encode(b"\x08" * 16).decode(),
        entries=(InvoiceEntry("ksef.invoices.sealed", 0, 5, h(b"inv"), 10, "1.xml"),),
        deflate_level=6,
        zlib_version="1.3",
    )


def test_manifest_gives_the_same_open_body_as_the_packer_declares() -> None:
    manifest = _manifest()
    ours = batch_open_request(batch_spec(manifest)).to_dict()
    theirs = manifest.open_batch_request()
    theirs.pop("offlineMode")  # False is KSeF's default; we omit it
    assert ours == theirs


def test_manifest_part_files_and_sizes(tmp_path: Path) -> None:
    manifest = _manifest()
    assert part_files(manifest, tmp_path) == {1: tmp_path / "part-01.aes",
                                              2: tmp_path / "part-02.aes"}
    assert part_sizes(manifest) == {1: 208, 2: 112}
