"""Request bodies for KSeF, built as the `ksef-client` SDK's typed models.

Pure functions; they check what KSeF would refuse (part count and ordinals, sizes, hash
form) so a malformed manifest fails here with a precise message instead of costing one of
the 60 batch-session opens a context gets per hour.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa
from ksef_client import models as sdk
from ksef_client.services.auth import build_ksef_token_auth_request

from pipeline.ksef.crypto import SessionKey, encrypt_cbc, wrap_key
from pipeline.ksef.numbers import sha256_b64

MAX_PARTS = 50
MAX_PACKAGE_BYTES = 5_000_000_000
MAX_INVOICE_BYTES = 3_000_000
COMPRESSION_TYPES = ("Zip", "TarGz")


@dataclass(frozen=True)
class FormCode:
    system_code: str = "FA (3)"
    schema_version: str = "1-0E"
    value: str = "FA"


FA3 = FormCode()


@dataclass(frozen=True)
class PartSpec:
    """One encrypted part as declared at open: ordinal (1-based), size and SHA-256 (b64)."""

    ordinal: int
    size: int
    sha256_b64: str


@dataclass(frozen=True)
class BatchSpec:
    """Everything `POST /sessions/batch` needs, taken from a package manifest.

    `file_size`/`file_hash` describe the whole archive before encryption; `parts` the
    encrypted parts. The symmetric key arrives already wrapped with the MF public key.
    """

    file_size: int
    file_hash: str
    parts: tuple[PartSpec, ...]
    encrypted_key: bytes = field(repr=False)
    iv: bytes = field(repr=False)
    compression_type: str | None = None  # "Zip" (KSeF's default) or "TarGz"
    offline_mode: bool = False
    public_key_id: str | None = None
    form_code: FormCode = FA3


def _check_hash(value: str, what: str) -> None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not base64: {value!r}") from exc
    if len(raw) != 32:
        raise ValueError(f"{what} must be a SHA-256 (32 bytes), got {len(raw)} bytes")


def check_batch_spec(spec: BatchSpec) -> None:
    """Raise ValueError naming the first thing KSeF would refuse in `spec`."""
    if not 1 <= spec.file_size <= MAX_PACKAGE_BYTES:
        raise ValueError(f"package size {spec.file_size} is outside 1..{MAX_PACKAGE_BYTES}")
    _check_hash(spec.file_hash, "package hash")
    if not 1 <= len(spec.parts) <= MAX_PARTS:
        raise ValueError(f"a package has 1..{MAX_PARTS} parts, got {len(spec.parts)}")
    ordinals = sorted(part.ordinal for part in spec.parts)
    if ordinals != list(range(1, len(spec.parts) + 1)):
        raise ValueError(f"part ordinals must be 1..{len(spec.parts)} once each, got {ordinals}")
    for part in spec.parts:
        if part.size < 1:
            raise ValueError(f"part {part.ordinal} has size {part.size}")
        _check_hash(part.sha256_b64, f"part {part.ordinal} hash")
    if spec.compression_type is not None and spec.compression_type not in COMPRESSION_TYPES:
        raise ValueError(f"compression type must be one of {COMPRESSION_TYPES}, "
                         f"got {spec.compression_type!r}")
    if len(spec.iv) != 16:
        raise ValueError(f"the IV must be 16 bytes, got {len(spec.iv)}")
    if not spec.encrypted_key:
        raise ValueError("the wrapped session key is empty")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _form_code(form: FormCode) -> sdk.FormCode:
    return sdk.FormCode(
        system_code=form.system_code, schema_version=form.schema_version, value=form.value
    )


def _encryption(encrypted_key: bytes, iv: bytes, public_key_id: str | None) -> sdk.EncryptionInfo:
    return sdk.EncryptionInfo(
        encrypted_symmetric_key=_b64(encrypted_key),
        initialization_vector=_b64(iv),
        public_key_id=public_key_id,
    )


def batch_open_request(spec: BatchSpec) -> sdk.OpenBatchSessionRequest:
    check_batch_spec(spec)
    parts = [
        sdk.BatchFilePartInfo(
            file_hash=part.sha256_b64, file_size=part.size, ordinal_number=part.ordinal
        )
        for part in sorted(spec.parts, key=lambda p: p.ordinal)
    ]
    compression = (
        None if spec.compression_type is None else sdk.CompressionType(spec.compression_type)
    )
    return sdk.OpenBatchSessionRequest(
        batch_file=sdk.BatchFileInfo(
            file_hash=spec.file_hash,
            file_parts=parts,
            file_size=spec.file_size,
            compression_type=compression,
        ),
        encryption=_encryption(spec.encrypted_key, spec.iv, spec.public_key_id),
        form_code=_form_code(spec.form_code),
        offline_mode=spec.offline_mode or None,
    )


def online_open_request(
    encrypted_key: bytes, iv: bytes, public_key_id: str | None = None, form: FormCode = FA3
) -> sdk.OpenOnlineSessionRequest:
    if len(iv) != 16:
        raise ValueError(f"the IV must be 16 bytes, got {len(iv)}")
    return sdk.OpenOnlineSessionRequest(
        encryption=_encryption(encrypted_key, iv, public_key_id), form_code=_form_code(form)
    )


def send_invoice_request(
    key: SessionKey,
    invoice: bytes,
    *,
    offline_mode: bool = False,
    hash_of_corrected_invoice: str | None = None,
) -> sdk.SendInvoiceRequest:
    """Encrypt one invoice under the session key and describe both forms (hash + size)."""
    if not invoice:
        raise ValueError("the invoice is empty")
    if len(invoice) > MAX_INVOICE_BYTES:
        raise ValueError(f"invoice of {len(invoice)} bytes exceeds {MAX_INVOICE_BYTES}")
    if hash_of_corrected_invoice is not None:
        _check_hash(hash_of_corrected_invoice, "hashOfCorrectedInvoice")
    ciphertext = encrypt_cbc(key, invoice)
    return sdk.SendInvoiceRequest(
        encrypted_invoice_content=_b64(ciphertext),
        encrypted_invoice_hash=sha256_b64(ciphertext),
        encrypted_invoice_size=len(ciphertext),
        invoice_hash=sha256_b64(invoice),
        invoice_size=len(invoice),
        hash_of_corrected_invoice=hash_of_corrected_invoice,
        offline_mode=offline_mode,
    )


def encrypted_ksef_token(public_key: rsa.RSAPublicKey, token: str, timestamp_ms: int) -> str:
    """`token|timestampMs` under the MF KsefTokenEncryption key (RSA-OAEP SHA-256), base64."""
    return _b64(wrap_key(public_key, f"{token}|{timestamp_ms}".encode()))


def ksef_token_auth_request(
    challenge: str,
    context_nip: str,
    encrypted_token_b64: str,
    public_key_id: str | None = None,
) -> sdk.InitTokenAuthenticationRequest:
    return build_ksef_token_auth_request(
        challenge=challenge,
        context_identifier_type="nip",
        context_identifier_value=context_nip,
        encrypted_token_base64=encrypted_token_b64,
        public_key_id=public_key_id,
    )

