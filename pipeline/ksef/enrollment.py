"""The pieces of KSeF certificate enrollment that need no I/O: the key and the CSR.

KSeF issues a certificate only in the caller's own name: the CSR subject must carry
exactly the attributes `GET /certificates/enrollments/data` returned (any change is
refused with 25003), and the key must be RSA 2048 or EC P-256 (25010). The key is made
here, on the operator's machine, so it never leaves it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pipeline.ksef.credentials import SigningKey

KeyType = Literal["ec", "rsa"]
CertificateType = Literal["Authentication", "Offline"]
CERTIFICATE_TYPES: tuple[CertificateType, ...] = ("Authentication", "Offline")

# (field of CertificateEnrollmentDataResponse, its snake_case spelling in the SDK, OID)
SUBJECT_FIELDS: tuple[tuple[str, str, x509.ObjectIdentifier], ...] = (
    ("commonName", "common_name", NameOID.COMMON_NAME),
    ("countryName", "country_name", NameOID.COUNTRY_NAME),
    ("givenName", "given_name", NameOID.GIVEN_NAME),
    ("surname", "surname", NameOID.SURNAME),
    ("serialNumber", "serial_number", NameOID.SERIAL_NUMBER),
    ("uniqueIdentifier", "unique_identifier", NameOID.X500_UNIQUE_IDENTIFIER),
    ("organizationName", "organization_name", NameOID.ORGANIZATION_NAME),
    ("organizationIdentifier", "organization_identifier", NameOID.ORGANIZATION_IDENTIFIER),
)


def new_key(key_type: KeyType = "ec") -> SigningKey:
    """EC P-256 (default: small, fast, and what KSeF recommends) or RSA 2048."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"key type must be ec or rsa, not {key_type!r}")


def subject_from_enrollment_data(data: Mapping[str, object]) -> x509.Name:
    """The CSR subject: every attribute of the enrollment data, unchanged.

    Accepts the API's camelCase keys and the SDK model's snake_case ones; `givenName`
    may be a list (a person with several given names).
    """
    attributes: list[x509.NameAttribute[str]] = []
    for camel, snake, oid in SUBJECT_FIELDS:
        value = data.get(camel, data.get(snake))
        if value is None or value == "" or value == []:
            continue
        values = value if isinstance(value, list) else [value]
        attributes += [x509.NameAttribute(oid, str(v)) for v in values]
    if not attributes:
        raise ValueError("the enrollment data has no subject attributes")
    return x509.Name(attributes)


def build_csr(data: Mapping[str, object], key: SigningKey) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for `key` with the subject KSeF dictated, signed with SHA-256."""
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(subject_from_enrollment_data(data))
            .sign(key, hashes.SHA256()))


def csr_base64(csr: x509.CertificateSigningRequest) -> str:
    """The CSR as `POST /certificates/enrollments` wants it: Base64 of the DER bytes."""
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode("ascii")


def key_pem(key: SigningKey) -> bytes:
    """Unencrypted PKCS#8 PEM: what the credentials file and KSEF_OFFLINE_CERT_DIR read."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
