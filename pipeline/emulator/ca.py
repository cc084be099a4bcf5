"""The emulator's certificate authority: issues KSeF certificates from enrollment CSRs.

Its key is made when the emulator starts and lives only in memory: certificates issued
by an earlier run stay trusted because the emulator recognises its own certificates by
the stored DER (see `cert_store`), not by re-checking this key.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AUTHENTICATION = "Authentication"
OFFLINE = "Offline"
CERTIFICATE_TYPES = (AUTHENTICATION, OFFLINE)


def new_serial() -> int:
    """64 bits with the top bit set, so the hex form always has KSeF's 16 characters."""
    return secrets.randbits(63) | (1 << 63)


def serial_hex(serial: int) -> str:
    return f"{serial:X}"


@dataclass(frozen=True)
class EmulatorCA:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(cls, now: dt.datetime) -> EmulatorCA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "KSeF Emulator CA"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ksef-pipeline"),
                          x509.NameAttribute(NameOID.COUNTRY_NAME, "PL")])
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(new_serial())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
        return cls(key, certificate)

    def issue(self, csr: x509.CertificateSigningRequest, certificate_type: str,
              valid_from: dt.datetime, valid_to: dt.datetime, serial: int) -> x509.Certificate:
        """A certificate for the CSR's subject and key, with the key usage of its type
        (Authentication: digital signature; Offline: non-repudiation, for KOD II)."""
        auth = certificate_type == AUTHENTICATION
        builder = (
            x509.CertificateBuilder().subject_name(csr.subject)
            .issuer_name(self.certificate.subject).public_key(csr.public_key())
            .serial_number(serial).not_valid_before(valid_from).not_valid_after(valid_to)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=auth, content_commitment=not auth, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True))
        if auth:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(self.key, hashes.SHA256())
