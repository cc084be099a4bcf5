"""The emulator's "Ministry of Finance" keys and its signing secret, kept under --data-dir.

Two RSA key pairs, each in a self-signed certificate: one for wrapping session keys
(usage SymmetricKeyEncryption) and one for KSeF-token authentication (usage
KsefTokenEncryption), as the real `/security/public-key-certificates` publishes them.
They are made on first start and reused after, so clients holding a certificate keep
working across restarts.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from pipeline.emulator.timefmt import iso
from pipeline.ksef.crypto import load_private_key_pem

SYMMETRIC_KEY_USAGE = "SymmetricKeyEncryption"
TOKEN_USAGE = "KsefTokenEncryption"
_VALIDITY_DAYS = 3650


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class PublishedKey:
    usage: str
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def public_key_id(self) -> str:
        spki = self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _b64(hashlib.sha256(spki).digest())

    def describe(self) -> dict[str, object]:
        """One entry of `GET /security/public-key-certificates`."""
        return {
            "certificate": _b64(self.certificate_der),
            "certificateId": _b64(hashlib.sha256(self.certificate_der).digest()),
            "publicKeyId": self.public_key_id,
            "validFrom": iso(self.certificate.not_valid_before_utc),
            "validTo": iso(self.certificate.not_valid_after_utc),
            "usage": [self.usage],
        }


def _self_signed(key: rsa.RSAPrivateKey, usage: str) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "KSeF emulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"KSeF emulator {usage}"),
    ])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=_VALIDITY_DAYS))
        .sign(key, hashes.SHA256())
    )


def _load_or_make(directory: Path, usage: str) -> PublishedKey:
    key_path = directory / f"{usage}.key.pem"
    cert_path = directory / f"{usage}.cert.pem"
    if key_path.exists() and cert_path.exists():
        key = load_private_key_pem(key_path.read_bytes())
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return PublishedKey(usage, key, cert)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _self_signed(key, usage)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_path, pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return PublishedKey(usage, key, cert)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


@dataclass(frozen=True)
class KeyRing:
    symmetric: PublishedKey
    token: PublishedKey
    secret: bytes = field(repr=False)  # signs JWTs and pre-signed URLs

    @classmethod
    def load(cls, data_dir: Path) -> KeyRing:
        directory = data_dir / "keys"
        directory.mkdir(parents=True, exist_ok=True)
        secret_path = directory / "signing.secret"
        if not secret_path.exists():
            _write_private(secret_path, secrets.token_bytes(32))
        return cls(
            symmetric=_load_or_make(directory, SYMMETRIC_KEY_USAGE),
            token=_load_or_make(directory, TOKEN_USAGE),
            secret=secret_path.read_bytes(),
        )

    def published(self) -> list[dict[str, object]]:
        return [self.token.describe(), self.symmetric.describe()]
