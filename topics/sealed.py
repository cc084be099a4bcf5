"""The compact record of `ksef.invoices.sealed`: binary framing, not JSON.

An invoice crossed every topic as base64 inside JSON before: a third larger than its
bytes, decoded and re-encoded at every hop, and the biggest cost per invoice. A sealed
record is now

    offset 0   4 bytes   magic b"KSS1"
    offset 4   4 bytes   M, the metadata length (unsigned, big-endian)
    offset 8   M bytes   metadata: UTF-8 JSON object, `records.SealedInvoice`
    8+M        12 bytes  AES-256-GCM nonce
    20+M       rest      AES-256-GCM ciphertext with its 16-byte tag

under the key `metadata.key_id`. The associated data is the first 8+M bytes, so the
metadata cannot be changed or moved onto another ciphertext. The decrypted payload is

    4 bytes   P, the private-part length (unsigned, big-endian)
    P bytes   private part: UTF-8 JSON object, `records.SealedPrivate` (personal data)
    rest      the invoice: raw DEFLATE (RFC 1951) of its exact bytes when
              `metadata.compression` is "deflate", the bytes themselves when "none"

so the record is smaller than the invoice, and a consumer in any language needs only
JSON, AES-GCM and inflate. `schemas/ksef.invoices.sealed.json` describes the metadata.

Records written before this format (one JSON object with `nonce_b64`/`ciphertext_b64`,
the invoice id as associated data, no compression) are still read: `read_meta` and
`open_sealed` tell the two apart by the first byte (`{` is never the magic's).

This module does the framing only; the keys stay with whoever passes a `Cipher`.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass
from typing import Protocol

import orjson

from topics.codec import decode, from_dict
from topics.records import SealedInvoice, SealedPrivate

# What `schemas/` says of the value (its JSON Schema describes the metadata part).
FRAMING = (
    "Binary value, not JSON: b'KSS1' | uint32 big-endian M | M bytes of UTF-8 JSON metadata "
    "(this schema) | 12-byte AES-256-GCM nonce | ciphertext with its 16-byte tag, under the "
    "key named by metadata.key_id, associated data = the first 8+M bytes. Decrypted: "
    "uint32 big-endian P | P bytes of UTF-8 JSON private part (x-private-part) | the invoice, "
    "raw DEFLATE (RFC 1951) of its exact bytes when metadata.compression is 'deflate', "
    "the bytes themselves when 'none'. A value starting with '{' is a record of the former "
    "JSON format (nonce_b64, ciphertext_b64; invoice id as associated data)."
)
MAGIC = b"KSS1"
NONCE_BYTES = 12
_LENGTH = struct.Struct(">I")
_HEAD = 4 + _LENGTH.size
DEFLATE, STORED = "deflate", "none"


class Cipher(Protocol):
    """What the framing needs of a keyring (the pipeline's `Keyring` is one)."""

    @property
    def active(self) -> str: ...

    def encrypt(self, key_id: str, nonce: bytes, plaintext: bytes, associated: bytes
                ) -> bytes: ...

    def decrypt(self, key_id: str, nonce: bytes, ciphertext: bytes, associated: bytes
                ) -> bytes: ...


class SealedRecordError(ValueError):
    """Not a sealed record, or one that does not open (wrong key, tampered, truncated)."""


@dataclass(frozen=True)
class OpenedInvoice:
    """A sealed record opened: its metadata, private part and invoice payload."""

    meta: SealedInvoice
    private: SealedPrivate
    payload: bytes  # the invoice, deflated when meta.compression == "deflate"

    @property
    def deflated(self) -> bytes | None:
        """The raw DEFLATE stream of the invoice, when the record carries one."""
        return self.payload if self.meta.compression == DEFLATE else None

    @property
    def zip_ready(self) -> bool:
        """The deflated stream, size and CRC-32 are all at hand: a ZIP entry can be
        written without inflating (the record is authenticated, metadata included)."""
        return self.meta.compression == DEFLATE and self.meta.crc32 is not None

    def invoice(self) -> bytes:
        """The invoice's exact bytes."""
        if self.meta.compression == STORED:
            return self.payload
        if self.meta.compression != DEFLATE:
            raise SealedRecordError(f"unknown compression {self.meta.compression!r}")
        try:
            out = zlib.decompress(self.payload, wbits=-15)
        except zlib.error as exc:
            raise SealedRecordError(f"invoice does not inflate: {exc}") from None
        if len(out) != self.meta.size:
            raise SealedRecordError(
                f"invoice inflates to {len(out)} bytes, the record says {self.meta.size}")
        return out


def deflate(invoice: bytes, level: int) -> tuple[str, bytes]:
    """(compression, payload): raw DEFLATE at `level`, or the bytes when it does not shrink."""
    if level > 0:
        packed = zlib.compress(invoice, level, wbits=-15)
        if len(packed) < len(invoice):
            return DEFLATE, packed
    return STORED, invoice


def encode_sealed(meta: SealedInvoice, private: SealedPrivate, payload: bytes,
                  cipher: Cipher, nonce: bytes) -> bytes:
    """The record's bytes; `meta.key_id` and `meta.compression` must describe `payload`."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"AES-GCM nonce must be {NONCE_BYTES} bytes")
    meta_json = orjson.dumps(meta)
    head = MAGIC + _LENGTH.pack(len(meta_json)) + meta_json
    private_json = orjson.dumps(private)
    plaintext = b"".join((_LENGTH.pack(len(private_json)), private_json, payload))
    return head + nonce + cipher.encrypt(meta.key_id, nonce, plaintext, head)


def _split(value: bytes) -> tuple[int, bytes]:
    if len(value) < _HEAD or value[:4] != MAGIC:
        raise SealedRecordError("not a sealed invoice record (no KSS1 magic)")
    (length,) = _LENGTH.unpack_from(value, 4)
    end = _HEAD + length
    if end + NONCE_BYTES + 16 > len(value):
        raise SealedRecordError("sealed invoice record is truncated")
    return end, value[_HEAD:end]


def read_meta(value: bytes) -> SealedInvoice:
    """The metadata alone (no key needed): routing, deadlines, dedupe, views."""
    if value[:1] == b"{":
        return _legacy_meta(orjson.loads(value))
    try:
        return decode(SealedInvoice, _split(value)[1])
    except (TypeError, orjson.JSONDecodeError) as exc:
        raise SealedRecordError(f"sealed metadata does not decode: {exc}") from None


def open_sealed(value: bytes, cipher: Cipher, meta: SealedInvoice | None = None
                ) -> OpenedInvoice:
    """Decrypt a sealed record (either format); raises SealedRecordError or, for a key
    id the cipher does not know, whatever the cipher raises for that. `meta` is what
    `read_meta` gave for this very value, when the caller has it: not decoded again (the
    metadata's bytes are still authenticated with the payload)."""
    if value[:1] == b"{":
        return _open_legacy(value, cipher)
    end, meta_json = _split(value)
    if meta is None:
        try:
            meta = decode(SealedInvoice, meta_json)
        except (TypeError, orjson.JSONDecodeError) as exc:
            raise SealedRecordError(f"sealed metadata does not decode: {exc}") from None
    nonce = value[end:end + NONCE_BYTES]
    plaintext = cipher.decrypt(meta.key_id, nonce, value[end + NONCE_BYTES:], value[:end])
    if len(plaintext) < _LENGTH.size:
        raise SealedRecordError("sealed payload is truncated")
    (plen,) = _LENGTH.unpack_from(plaintext, 0)
    start = _LENGTH.size + plen
    try:
        private = from_dict(SealedPrivate, orjson.loads(plaintext[_LENGTH.size:start]))
    except (TypeError, ValueError) as exc:
        raise SealedRecordError(f"sealed private part does not decode: {exc}") from None
    return OpenedInvoice(meta, private, plaintext[start:])


def _legacy_meta(doc: object) -> SealedInvoice:
    if not isinstance(doc, dict):
        raise SealedRecordError("sealed record (JSON) is not an object")
    return from_dict(SealedInvoice, {**doc, "compression": STORED})


def _open_legacy(value: bytes, cipher: Cipher) -> OpenedInvoice:
    """A record of the JSON format (before KSS1): base64 fields, invoice id as AAD."""
    try:
        doc = orjson.loads(value)
        meta = _legacy_meta(doc)
        nonce = base64.b64decode(doc["nonce_b64"])
        ciphertext = base64.b64decode(doc["ciphertext_b64"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SealedRecordError(f"sealed record (JSON) does not decode: {exc}") from None
    xml = cipher.decrypt(meta.key_id, nonce, ciphertext, meta.invoice_id.encode())
    return OpenedInvoice(meta, SealedPrivate(buyer_nip=doc.get("buyer_nip")), xml)
