"""Self-signed test certificates for a NIP, as KSeF's TEST environment accepts them.

Two shapes, as MF's sample apps make them: a company seal (`organizationIdentifier`
`VATPL-<NIP>`) and a person (`serialNumber` `TINPL-<NIP>`). Used by `emulator-ctl
mint-cert`, the tests and the demo; never for production.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KEY_TYPES = ("rsa", "ec")
SHAPES = ("seal", "person")


def new_key(key_type: str) -> PrivateKey:
    """RSA 2048 or EC P-256, the two key types KSeF certifies."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"key type must be one of {KEY_TYPES}, not {key_type!r}")


def subject_for(nip: str, shape: str = "seal", name: str | None = None) -> x509.Name:
    if shape == "seal":
        org = name or f"Test company {nip}"
        return x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
            x509.NameAttribute(NameOID.COMMON_NAME, org),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL")])
    if shape == "person":
        return x509.Name([
            x509.NameAttribute(NameOID.GIVEN_NAME, "Jan"),
            x509.NameAttribute(NameOID.SURNAME, "Testowy"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"TINPL-{nip}"),
            x509.NameAttribute(NameOID.COMMON_NAME, name or "Jan Testowy"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL")])
    raise ValueError(f"shape must be one of {SHAPES}, not {shape!r}")


def self_signed(key: PrivateKey, subject: x509.Name, not_before: dt.datetime,
                not_after: dt.datetime) -> x509.Certificate:
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))


@dataclass(frozen=True)
class MintedCredential:
    key: PrivateKey
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode("ascii")

    @property
    def serial_hex(self) -> str:
        return f"{self.certificate.serial_number:X}"

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex().upper()

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """`<stem>.crt.pem` and `<stem>.key.pem` (created 0600, never world-readable)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{stem}.crt.pem"
        key_path = directory / f"{stem}.key.pem"
        cert_path.write_text(self.certificate_pem)
        key_path.unlink(missing_ok=True)  # an existing file would keep its (looser) mode
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.key_pem)
        return cert_path, key_path


def mint(nip: str, key_type: str = "rsa", *, shape: str = "seal", days: float = 365,
         not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
         ) -> MintedCredential:
    """A fresh key and a self-signed certificate naming `nip`."""
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    end = not_after or start + dt.timedelta(days=days)
    key = new_key(key_type)
    return MintedCredential(key, self_signed(key, subject_for(nip, shape), start, end))
