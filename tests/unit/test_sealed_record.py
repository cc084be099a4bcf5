"""The compact sealed record: framing, binding of metadata, legacy records, no plaintext."""

from __future__ import annotations

import base64
import dataclasses
import struct
import zlib

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipeline.ksef.keyring import Keyring, KeyringError, MissingKeyError
from topics.records import KafkaRef, SealedInvoice, SealedPrivate
from topics.sealed import (
    MAGIC,
    SealedRecordError,
    deflate,
    encode_sealed,
    open_sealed,
    read_meta,
)

KEY = b"\x05" * 32
RING = Keyring({"k1": KEY}, "k1")
INVOICE = b"<?xml version='1.0'?><Faktura>" + b"<Wiersz>towar 23%</Wiersz>" * 400 + b"</Faktura>"


def meta(**changes: object) -> SealedInvoice:
    base = SealedInvoice(
        invoice_id="inv-1", seller_nip="5261040828", invoice_number="FV/1",
        issue_date="2026-12-04", kind="VAT", size=len(INVOICE), sha256="h" * 44,
        has_attachments=False, mode="online", key_id="k1", qr_code_1="https://qr/x",
        received_at="2026-12-04T10:00:00+00:00", sealed_at="2026-12-04T10:00:01+00:00",
        origin=KafkaRef("ksef.invoices.submitted", 1, 7))
    return dataclasses.replace(base, **changes)


def record(level: int = 3, buyer: str | None = "1234567890") -> tuple[SealedInvoice, bytes]:
    compression, payload = deflate(INVOICE, level)
    m = meta(compression=compression)
    return m, encode_sealed(m, SealedPrivate(buyer_nip=buyer), payload, RING, RING.nonce())


def test_round_trip_is_exact_and_smaller_than_the_invoice() -> None:
    m, raw = record()
    opened = open_sealed(raw, RING)
    assert opened.invoice() == INVOICE and opened.meta == m == read_meta(raw)
    assert opened.private.buyer_nip == "1234567890"
    assert opened.deflated == zlib.compress(INVOICE, 3, wbits=-15)
    assert raw.startswith(MAGIC) and len(raw) < len(INVOICE) // 2
    assert b"1234567890" not in raw and b"Wiersz" not in raw  # personal data and text sealed


def test_metadata_already_read_is_not_decoded_again() -> None:
    _, raw = record()
    meta_read = read_meta(raw)
    opened = open_sealed(raw, RING, meta_read)
    assert opened.meta is meta_read and opened.invoice() == INVOICE
    forged = raw.replace(b'"mode":"online"', b'"mode":"offlin"')
    with pytest.raises(KeyringError, match="tampered"):  # the bytes are still checked
        open_sealed(forged, RING, meta_read)


def test_stored_when_deflate_is_off() -> None:
    m, raw = record(level=0)
    assert m.compression == "none"
    opened = open_sealed(raw, RING)
    assert opened.invoice() == INVOICE and opened.deflated is None


def test_a_reader_in_any_language_needs_json_aes_gcm_and_inflate() -> None:
    """Decode by the documented layout alone, without the module's helpers."""
    _, raw = record()
    (length,) = struct.unpack(">I", raw[4:8])
    doc = orjson.loads(raw[8:8 + length])
    nonce, sealed = raw[8 + length:20 + length], raw[20 + length:]
    plain = AESGCM(KEY).decrypt(nonce, sealed, raw[:8 + length])
    (plen,) = struct.unpack(">I", plain[:4])
    assert orjson.loads(plain[4:4 + plen]) == {"buyer_nip": "1234567890"}
    assert doc["compression"] == "deflate" and doc["key_id"] == "k1"
    assert zlib.decompress(plain[4 + plen:], wbits=-15) == INVOICE


def test_metadata_is_bound_to_the_ciphertext() -> None:
    _, raw = record()
    forged = raw.replace(b'"mode":"online"', b'"mode":"offlin"')
    assert forged != raw
    with pytest.raises(KeyringError, match="tampered"):
        open_sealed(forged, RING)


@pytest.mark.parametrize("junk", [b"", b"KSS1", b"KSS1\x00\x00\x10\x00{}", b"\x00" * 40,
                                  b"[1, 2]", b"{\"invoice_id\": 3}"])
def test_junk_is_a_sealed_record_error_not_a_crash(junk: bytes) -> None:
    with pytest.raises((SealedRecordError, TypeError, ValueError)):
        open_sealed(junk, RING)
    with pytest.raises((SealedRecordError, TypeError, ValueError)):
        read_meta(junk)


def test_a_key_this_worker_lacks_is_a_missing_key_not_a_bad_record() -> None:
    _, raw = record()
    other = Keyring({"k2": b"\x06" * 32}, "k2")
    with pytest.raises(MissingKeyError) as caught:
        open_sealed(raw, other)
    assert caught.value.key_id == "k1"


def test_records_of_the_json_format_are_still_read() -> None:
    """Records sealed before KSS1 (JSON with base64 fields, invoice id as associated data)."""
    sealed = RING.seal(INVOICE, associated=b"inv-1")
    legacy = {**dataclasses.asdict(meta()), "origin": {"topic": "ksef.invoices.submitted",
                                            "partition": 1, "offset": 7},
              "nonce_b64": base64.b64encode(sealed.nonce).decode(),
              "ciphertext_b64": base64.b64encode(sealed.ciphertext).decode(),
              "buyer_nip": "1234567890"}
    legacy.pop("compression")
    raw = orjson.dumps(legacy)
    opened = open_sealed(raw, RING)
    assert opened.invoice() == INVOICE and opened.private.buyer_nip == "1234567890"
    assert read_meta(raw).invoice_id == "inv-1" and read_meta(raw).compression == "none"
