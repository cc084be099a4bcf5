"""Self-signed certificates whose subject carries a NIP, as KSeF's TEST environment accepts.

For tests, the emulator and `emulator-ctl`: never for production (KSeF PRD trusts only
qualified certificates and its own). The subject follows the attributes KSeF reads
(podpis-xades.md): a company seal has organizationIdentifier `VATPL-<NIP>`,
organizationName, commonName and countryName; a person's certificate has givenName,
surname, serialNumber `TINPL-<NIP>`, commonName and countryName.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pipeline.ksef.credentials import SigningKey

ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")
KeyKind = Literal["rsa", "ec"]
SubjectKind = Literal["seal", "person"]


@dataclass(frozen=True)
class TestCertificate:
    """A certificate and its key, with PEM/DER exports for writing test files."""

    __test__ = False  # not a pytest test class despite its name

    certificate: x509.Certificate
    private_key: SigningKey = field(repr=False)

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def key_pem(self, password: bytes | None = None) -> bytes:
        return self._key(serialization.Encoding.PEM, password)

    def key_der(self, password: bytes | None = None) -> bytes:
        return self._key(serialization.Encoding.DER, password)

    def _key(self, encoding: serialization.Encoding, password: bytes | None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password
            else serialization.NoEncryption())
        return self.private_key.private_bytes(encoding, serialization.PrivateFormat.PKCS8,
                                              encryption)

    def pkcs12(self, password: bytes | None = None, name: bytes = b"ksef") -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password
            else serialization.NoEncryption())
        return serialization.pkcs12.serialize_key_and_certificates(
            name, self.private_key, self.certificate, None, encryption)


def subject_for(nip: str, kind: SubjectKind = "seal", name: str = "Test seller") -> x509.Name:
    """A subject KSeF reads `nip` from (organizationIdentifier or serialNumber)."""
    if kind == "seal":
        return x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ])
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
        x509.NameAttribute(NameOID.GIVEN_NAME, "Jan"),
        x509.NameAttribute(NameOID.SURNAME, "Kowalski"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, f"TINPL-{nip}"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Jan Kowalski"),
    ])


def new_key(kind: KeyKind = "rsa") -> SigningKey:
    """RSA 2048 or EC P-256: the smallest keys KSeF accepts, so tests stay fast."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def mint_test_certificate(
    nip: str,
    *,
    key: SigningKey | KeyKind = "rsa",
    subject: SubjectKind = "seal",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> TestCertificate:
    """A self-signed certificate for `nip`, valid from a day before `now` for a year
    unless `not_before`/`not_after` say otherwise (e.g. to test expiry)."""
    now = now or dt.datetime.now(dt.UTC)
    private_key = new_key(key) if isinstance(key, str) else key
    certificate = self_signed(private_key, subject_for(nip, subject),
                              not_before or now - dt.timedelta(days=1),
                              not_after or now + dt.timedelta(days=365))
    return TestCertificate(certificate, private_key)


def self_signed(key: SigningKey, subject: x509.Name, not_before: dt.datetime,
                not_after: dt.datetime) -> x509.Certificate:
    """A self-signed signing certificate (key usage: signatures only)."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
