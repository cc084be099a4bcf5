"""How a seller context proves its identity to KSeF: a KSeF token or a certificate + key.

Pure types and parsing of bytes already read (PEM, DER, PKCS#12); reading files, their
permissions and reloading live in `pipeline.credentials`. KSeF tokens are accepted only
until 2026-12-31; after that a context authenticates with an XAdES signature made with
a certificate (a KSeF `Authentication` certificate, a qualified seal, or a qualified
signature of a person holding permissions).

Secrets (token, private key) are kept out of every `repr` and message.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from pipeline.ksef.errors import CredentialProblem, KsefCredentialError

SubjectIdentifierType = Literal["certificateSubject", "certificateFingerprint"]
SUBJECT_IDENTIFIER_TYPES: tuple[str, ...] = get_args(SubjectIdentifierType)
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
LAST_TOKEN_DAY = dt.date(2026, 12, 31)  # KSeF tokens authenticate until the end of 2026

# The patterns KSeF recognises in a certificate subject (podpis-xades.md).
_ORG_ID = re.compile(r"VATPL.*?(\d{10})")
_SERIAL_NIP = re.compile(r"(?:TINPL|NIP).*?(\d{10})")
_ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")


def _error(nip: str, problem: CredentialProblem, message: str,
           path: str | None = None) -> KsefCredentialError:
    return KsefCredentialError(nip, problem, message, path=path)


@dataclass(frozen=True)
class TokenCredential:
    """A KSeF token for one context; `source` says where it was configured (no secret)."""

    nip: str
    token: str = field(repr=False)
    source: str = ""
    kind: Literal["token"] = "token"

    def __post_init__(self) -> None:
        if not self.token.strip():
            raise _error(self.nip, "invalid", f"empty KSeF token for context {self.nip}",
                         self.source or None)


@dataclass(frozen=True)
class CertificateInfo:
    """What an operator needs to know about a certificate (nothing secret)."""

    subject: str
    issuer: str
    serial_number: int
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str  # hex, upper case, as KSeF shows certificate fingerprints
    nip: str | None  # from organizationIdentifier VATPL-... or serialNumber TINPL-/NIP-...
    key_type: str  # e.g. "RSA 2048", "EC secp256r1"

    @classmethod
    def of(cls, certificate: x509.Certificate) -> CertificateInfo:
        return cls(
            subject=certificate.subject.rfc4514_string(),
            issuer=certificate.issuer.rfc4514_string(),
            serial_number=certificate.serial_number,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            fingerprint_sha256=certificate.fingerprint(hashes.SHA256()).hex().upper(),
            nip=nip_of_subject(certificate.subject),
            key_type=_key_type(certificate.public_key()),
        )

    def days_to_expiry(self, now: dt.datetime) -> int:
        """Whole days until `not_after` (negative once expired)."""
        return (self.not_after - now) // dt.timedelta(days=1)

    def validity_problem(self, now: dt.datetime) -> CredentialProblem | None:
        if now < self.not_before:
            return "not-yet-valid"
        if now >= self.not_after:
            return "expired"
        return None


@dataclass(frozen=True)
class CertificateCredential:
    """A certificate and its private key, for XAdES authentication of context `nip`.

    Equal when the certificate, subject identifier type and context are (the key is bound
    to the certificate), so a reload that changes nothing keeps the client's tokens.
    """

    nip: str
    certificate: x509.Certificate = field(repr=False)
    private_key: SigningKey = field(repr=False, compare=False)
    subject_identifier_type: SubjectIdentifierType = "certificateSubject"
    source: str = ""
    kind: Literal["certificate"] = "certificate"
    info: CertificateInfo = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if self.subject_identifier_type not in SUBJECT_IDENTIFIER_TYPES:
            raise _error(self.nip, "invalid",
                         f"subject identifier type {self.subject_identifier_type!r} is not "
                         f"one of {', '.join(SUBJECT_IDENTIFIER_TYPES)}", self.source or None)
        check_key_pair(self.nip, self.certificate, self.private_key, self.source or None)
        object.__setattr__(self, "info", CertificateInfo.of(self.certificate))


Credential = TokenCredential | CertificateCredential


def nip_of_subject(subject: x509.Name) -> str | None:
    """The NIP KSeF reads from a subject: organizationIdentifier, else serialNumber."""
    for oid, pattern in ((_ORGANIZATION_IDENTIFIER, _ORG_ID),
                         (NameOID.SERIAL_NUMBER, _SERIAL_NIP)):
        for attribute in subject.get_attributes_for_oid(oid):
            value = attribute.value
            found = pattern.search(value if isinstance(value, str) else value.decode())
            if found:
                return found.group(1)
    return None


def _key_type(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    return type(key).__name__


def check_key_pair(nip: str, certificate: x509.Certificate, key: object,
                   path: str | None = None) -> None:
    """Refuse what KSeF would refuse (weak keys) and a key that is not the certificate's."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise _error(nip, "invalid", f"RSA key of {key.key_size} bits: KSeF needs at "
                         f"least {MIN_RSA_BITS}", path)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size < MIN_EC_BITS:
            raise _error(nip, "invalid", f"EC curve {key.curve.name}: KSeF needs at least "
                         f"{MIN_EC_BITS} bits", path)
    else:
        raise _error(nip, "invalid", f"unsupported private key type {type(key).__name__}: "
                     "KSeF signatures are RSA or ECDSA", path)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.DER, public)
    theirs = certificate.public_key().public_bytes(serialization.Encoding.DER, public)
    if mine != theirs:
        raise _error(nip, "invalid", "the private key does not belong to the certificate "
                     f"({certificate.subject.rfc4514_string()})", path)


def parse_certificate(nip: str, data: bytes, path: str | None = None) -> x509.Certificate:
    """A certificate from PEM or DER bytes."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise _error(nip, "unreadable", "not a PEM or DER X.509 certificate", path) from exc


def parse_private_key(nip: str, data: bytes, password: bytes | None,
                      path: str | None = None) -> SigningKey:
    """A private key from PEM or DER bytes (PKCS#8, PKCS#1 or SEC1), decrypted if need be."""
    loader = (serialization.load_pem_private_key if b"-----BEGIN" in data
              else serialization.load_der_private_key)
    try:
        key = loader(data, password=password)
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        if password is None:
            raise _error(nip, "wrong-password", "the private key is encrypted: name its "
                         "password file (key_password_file)", path) from exc
        raise _error(nip, "invalid", "the private key is not encrypted: remove "
                     "key_password_file", path) from exc
    except ValueError as exc:
        if password is not None:
            raise _error(nip, "wrong-password", "cannot decrypt the private key (wrong "
                         "password, or not a PEM/DER key)", path) from exc
        raise _error(nip, "unreadable", "not a PEM or DER private key", path) from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise _error(nip, "invalid", f"unsupported private key type {type(key).__name__}",
                     path)
    return key


def parse_pkcs12(nip: str, data: bytes, password: bytes | None,
                 path: str | None = None) -> tuple[x509.Certificate, SigningKey]:
    """The certificate and key of a PKCS#12 (.p12/.pfx) bundle."""
    try:
        key, certificate, _chain = pkcs12.load_key_and_certificates(data, password)
    except ValueError as exc:
        raise _error(nip, "wrong-password", "cannot open the PKCS#12 file (wrong password, "
                     "or not PKCS#12)", path) from exc
    if key is None or certificate is None:
        raise _error(nip, "invalid", "the PKCS#12 file lacks the private key or the "
                     "certificate", path)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise _error(nip, "invalid", f"unsupported private key type {type(key).__name__}",
                     path)
    return certificate, key
