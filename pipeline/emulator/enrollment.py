"""KSeF certificate enrollment rules: the CSR data a subject must use, CSR checks, limits.

KSeF issues a certificate only "in one's own name": the DN comes from the certificate
the caller authenticated with, and a CSR that changes it is refused (25003). Keys are
RSA 2048 or EC P-256 (25010), CSR signatures SHA-1/2 based (25011).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pipeline.emulator.errors import (
    BAD_CSR,
    BAD_CSR_ALGORITHM,
    BAD_KEY,
    CSR_DATA_MISMATCH,
    bad_request,
)

# (field of CertificateEnrollmentDataResponse, OID), in the order the docs list them
FIELDS = (
    ("commonName", NameOID.COMMON_NAME), ("countryName", NameOID.COUNTRY_NAME),
    ("givenName", NameOID.GIVEN_NAME), ("surname", NameOID.SURNAME),
    ("serialNumber", NameOID.SERIAL_NUMBER), ("uniqueIdentifier", NameOID.X500_UNIQUE_IDENTIFIER),
    ("organizationName", NameOID.ORGANIZATION_NAME),
    ("organizationIdentifier", NameOID.ORGANIZATION_IDENTIFIER),
)
# limits per authenticated subject (limity/limity.md): enrollments, active certificates
LIMITS = {"Nip": (300, 100), "Pesel": (12, 6), "Fingerprint": (12, 6)}
_CSR_HASHES = (hashes.SHA1, hashes.SHA256, hashes.SHA384, hashes.SHA512)


def _values(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def enrollment_data(certificate: x509.Certificate) -> dict[str, object]:
    """The DN attributes of the authenticating certificate, as KSeF returns them."""
    data: dict[str, object] = {}
    for field, oid in FIELDS:
        values = _values(certificate.subject, oid)
        if not values:
            continue
        data[field] = values if field == "givenName" and len(values) > 1 else values[0]
    data.setdefault("commonName", data.get("organizationName", "KSeF"))
    data.setdefault("countryName", "PL")
    return data


def _dn(name: x509.Name) -> dict[str, list[str]]:
    return {field: sorted(_values(name, oid)) for field, oid in FIELDS if _values(name, oid)}


def check_csr(der: bytes, authenticated: x509.Certificate) -> x509.CertificateSigningRequest:
    """The CSR if KSeF would accept it for the subject of `authenticated`."""
    try:
        csr = x509.load_der_x509_csr(der)
        valid = csr.is_signature_valid
    except ValueError as exc:
        raise bad_request(BAD_CSR, f"csr is not a DER PKCS#10 request: {exc}") from exc
    if not valid:
        raise bad_request(BAD_CSR, "the CSR signature does not verify with its own key")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size != 2048:
            raise bad_request(BAD_KEY, f"RSA key of {key.key_size} bits; KSeF certifies 2048")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise bad_request(BAD_KEY, f"curve {key.curve.name}; KSeF certifies P-256 only")
    else:
        raise bad_request(BAD_KEY, f"key type {type(key).__name__}; RSA 2048 or EC P-256 only")
    if not isinstance(csr.signature_hash_algorithm, _CSR_HASHES):
        raise bad_request(BAD_CSR_ALGORITHM, "the CSR must be signed with SHA-1/256/384/512")
    expected = {k: sorted(v if isinstance(v, list) else [str(v)])
                for k, v in enrollment_data(authenticated).items()}
    got = _dn(csr.subject)
    if got != expected:
        diff = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
        raise bad_request(CSR_DATA_MISMATCH, f"CSR subject differs from "
                          f"/certificates/enrollments/data in: {', '.join(diff)}")
    return csr
