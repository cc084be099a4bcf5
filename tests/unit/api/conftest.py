"""Helpers for the API client's unit tests: a throwaway MF-like RSA certificate."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_certificate(
    valid_from: dt.datetime, valid_to: dt.datetime, key: rsa.RSAPrivateKey = _KEY
) -> str:
    """Base64 DER of a self-signed certificate, as `/security/public-key-certificates` has."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test MF key")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


@pytest.fixture(scope="session")
def private_key() -> rsa.RSAPrivateKey:
    return _KEY
