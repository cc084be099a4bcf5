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

from pipeline.ksef import selfsigned as domain

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KEY_TYPES = ("rsa", "ec")
SHAPES = ("seal", "person")
self_signed = domain.self_signed


def new_key(key_type: str) -> PrivateKey:
    """RSA 2048 or EC P-256, the two key types KSeF certifies."""
    if key_type not in KEY_TYPES:
        raise ValueError(f"key type must be one of {KEY_TYPES}, not {key_type!r}")
    return domain.new_key("rsa" if key_type == "rsa" else "ec")


def subject_for(nip: str, shape: str = "seal", name: str | None = None) -> x509.Name:
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, not {shape!r}")
    return domain.subject_for(nip, "seal" if shape == "seal" else "person",
                              name or f"Test company {nip}")


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
