"""KSeF verification links carried by QR codes on invoice visualisations.

KOD I lets anyone check an invoice in KSeF:
    https://{qr host}/invoice/{seller NIP}/{P_1 as DD-MM-YYYY}/{base64url SHA-256 of the XML}
It is labelled with the KSeF number once known, OFFLINE until then.

KOD II (offline invoices only) proves who issued the invoice with the seller's KSeF
offline certificate:
    https://{qr host}/certificate/{ctx type}/{ctx value}/{seller NIP}/{cert serial}/{hash}/{sig}
where `sig` is base64url of a signature over everything between `https://` and the last
`/` (no scheme, no trailing slash): RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt,
key of at least 2048 bits) or ECDSA P-256/SHA-256 in IEEE P1363 form (r || s, 32 bytes
each). Verification also accepts a DER-encoded ECDSA signature, which MF allows.
It is labelled CERTYFIKAT.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from pipeline.ksef.numbers import b64url

OFFLINE_LABEL = "OFFLINE"
CERTIFICATE_LABEL = "CERTYFIKAT"
CONTEXT_TYPES = ("Nip", "InternalId", "NipVatUe", "PeppolId")
PSS_SALT_BYTES = 32
MIN_RSA_BITS = 2048
P256_FIELD_BYTES = 32

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
VerifyingKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_NIP = re.compile(r"\d{10}")
_SERIAL = re.compile(r"[0-9A-F]+")
_PATH_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
_SCHEME = "https://"


class QrError(ValueError):
    """A link that cannot be built or parsed; the message says which part and why."""


class QrEnvironment(StrEnum):
    TEST = "test"
    DEMO = "demo"
    PROD = "prod"

    @property
    def host(self) -> str:
        return _HOSTS[self]

    @classmethod
    def parse(cls, name: str) -> QrEnvironment:
        """`test`/`te`, `demo`/`preprod`, `prod`/`prd`/`production` (any case)."""
        value = _ALIASES.get(name.strip().lower())
        if value is None:
            raise QrError(f"unknown KSeF environment {name!r}; expected test, demo or prod")
        return value


_HOSTS = {
    QrEnvironment.TEST: "qr-test.ksef.mf.gov.pl",
    QrEnvironment.DEMO: "qr-demo.ksef.mf.gov.pl",
    QrEnvironment.PROD: "qr.ksef.mf.gov.pl",
}
_ALIASES = {
    "test": QrEnvironment.TEST,
    "te": QrEnvironment.TEST,
    "demo": QrEnvironment.DEMO,
    "preprod": QrEnvironment.DEMO,
    "prod": QrEnvironment.PROD,
    "prd": QrEnvironment.PROD,
    "production": QrEnvironment.PROD,
}
_ENV_BY_HOST = {host: env for env, host in _HOSTS.items()}


def invoice_hash(xml: bytes) -> str:
    """The KSeF file hash in link form: base64url (no padding) of SHA-256 of the exact bytes."""
    return b64url(hashlib.sha256(xml).digest())


def normalise_hash(value: str) -> str:
    """A SHA-256 given as base64 or base64url, returned as unpadded base64url."""
    text = value.strip()
    try:
        raw = base64.urlsafe_b64decode(
            text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4)
        )
    except (binascii.Error, ValueError) as exc:
        raise QrError(f"invoice hash {value!r} is not base64") from exc
    if len(raw) != hashlib.sha256().digest_size:
        raise QrError(f"invoice hash decodes to {len(raw)} bytes, SHA-256 has 32")
    return b64url(raw)


def _check_nip(nip: str) -> str:
    if not _NIP.fullmatch(nip):
        raise QrError(f"seller NIP must be 10 digits, got {nip!r}")
    return nip


def _check_segment(value: str, what: str) -> str:
    if not _PATH_SAFE.fullmatch(value):
        raise QrError(f"{what} {value!r} must be letters, digits or . _ ~ - only")
    return value


@dataclass(frozen=True, slots=True)
class InvoiceLink:
    """KOD I."""

    environment: QrEnvironment
    seller_nip: str
    issued: dt.date
    invoice_hash: str

    @property
    def url(self) -> str:
        return (
            f"{_SCHEME}{self.environment.host}/invoice/{self.seller_nip}/"
            f"{self.issued:%d-%m-%Y}/{self.invoice_hash}"
        )


def invoice_link(
    env: QrEnvironment, seller_nip: str, issued: dt.date, invoice_hash_value: str
) -> InvoiceLink:
    """KOD I for an invoice whose hash is known (base64 or base64url)."""
    return InvoiceLink(env, _check_nip(seller_nip), issued, normalise_hash(invoice_hash_value))


def kod1_label(ksef_number: str | None) -> str:
    """The KSeF number once KSeF has assigned it, OFFLINE until then."""
    return ksef_number if ksef_number else OFFLINE_LABEL


def certificate_serial(certificate: x509.Certificate) -> str:
    """Serial as KSeF prints it: upper-case hex, 16 digits for KSeF's 64-bit serials.

    Longer serials (certificates from elsewhere, tests) keep whole bytes: even length.
    """
    serial = certificate.serial_number
    digits = max(16, (serial.bit_length() + 7) // 8 * 2)
    return f"{serial:0{digits}X}"


@dataclass(frozen=True, slots=True)
class CertificateLink:
    """KOD II; `signature` is base64url, empty until signed."""

    environment: QrEnvironment
    context_type: str
    context_value: str
    seller_nip: str
    certificate_serial: str
    invoice_hash: str
    signature: str = ""

    @property
    def signed_text(self) -> str:
        """What the signature covers: the link without scheme, signature and trailing /."""
        return (
            f"{self.environment.host}/certificate/{self.context_type}/{self.context_value}/"
            f"{self.seller_nip}/{self.certificate_serial}/{self.invoice_hash}"
        )

    @property
    def url(self) -> str:
        if not self.signature:
            raise QrError("KOD II link is not signed yet")
        return f"{_SCHEME}{self.signed_text}/{self.signature}"

    def signed(self, key: SigningKey) -> CertificateLink:
        signature = b64url(sign_text(self.signed_text, key))
        return CertificateLink(
            self.environment,
            self.context_type,
            self.context_value,
            self.seller_nip,
            self.certificate_serial,
            self.invoice_hash,
            signature,
        )

    def verify(self, key: VerifyingKey | x509.Certificate) -> bool:
        """True when the signature is valid for `key` (or the certificate's key)."""
        public = key.public_key() if isinstance(key, x509.Certificate) else key
        if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            return False
        try:
            signature = base64.urlsafe_b64decode(self.signature + "=" * (-len(self.signature) % 4))
        except (binascii.Error, ValueError):
            return False
        return verify_text(self.signed_text, signature, public)


def certificate_link(
    env: QrEnvironment,
    *,
    context_type: str,
    context_value: str,
    seller_nip: str,
    certificate_serial_hex: str,
    invoice_hash_value: str,
    key: SigningKey,
) -> CertificateLink:
    """KOD II, signed with the private key of the seller's KSeF offline certificate."""
    if context_type not in CONTEXT_TYPES:
        raise QrError(f"context type {context_type!r} must be one of {', '.join(CONTEXT_TYPES)}")
    serial = certificate_serial_hex.strip().upper()
    if not _SERIAL.fullmatch(serial):
        raise QrError(f"certificate serial {certificate_serial_hex!r} must be hexadecimal")
    unsigned = CertificateLink(
        env,
        context_type,
        _check_segment(context_value, "context value"),
        _check_nip(seller_nip),
        serial,
        normalise_hash(invoice_hash_value),
    )
    return unsigned.signed(key)


def check_signing_key(key: object) -> SigningKey:
    """The key types KSeF accepts for KOD II, or QrError saying why not."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise QrError(f"RSA key has {key.key_size} bits, KSeF needs at least {MIN_RSA_BITS}")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise QrError(f"EC key is on {key.curve.name}, KSeF needs P-256 (secp256r1)")
        return key
    raise QrError(f"KOD II needs an RSA or EC P-256 key, got {type(key).__name__}")


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_BYTES)


def sign_text(text: str, key: SigningKey) -> bytes:
    """RSASSA-PSS or ECDSA P-256 (IEEE P1363 r||s) signature over the UTF-8 text."""
    data = text.encode("utf-8")
    key = check_signing_key(key)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _pss(), hashes.SHA256())
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(P256_FIELD_BYTES, "big") + s.to_bytes(P256_FIELD_BYTES, "big")


def verify_text(text: str, signature: bytes, key: VerifyingKey) -> bool:
    data = text.encode("utf-8")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, _pss(), hashes.SHA256())
            return True
        if len(signature) == 2 * P256_FIELD_BYTES:  # IEEE P1363; otherwise try DER
            r = int.from_bytes(signature[:P256_FIELD_BYTES], "big")
            s = int.from_bytes(signature[P256_FIELD_BYTES:], "big")
            signature = encode_dss_signature(r, s)
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def _split_link(url: str, kind: str, parts: int) -> tuple[QrEnvironment, list[str]]:
    if not url.startswith(_SCHEME):
        raise QrError(f"link must start with {_SCHEME}: {url!r:.120}")
    host, _, path = url[len(_SCHEME) :].partition("/")
    env = _ENV_BY_HOST.get(host)
    if env is None:
        raise QrError(f"{host!r} is not a KSeF QR host")
    segments = path.split("/")
    if len(segments) != parts + 1 or segments[0] != kind or "" in segments:
        raise QrError(f"not a KSeF /{kind} link with {parts} parts: {url!r:.160}")
    return env, segments[1:]


def parse_invoice_link(url: str) -> InvoiceLink:
    env, (nip, day, hash_value) = _split_link(url, "invoice", 3)
    try:
        issued = dt.datetime.strptime(day, "%d-%m-%Y").date()
    except ValueError as exc:
        raise QrError(f"issue date {day!r} is not DD-MM-YYYY") from exc
    return invoice_link(env, nip, issued, hash_value)


def parse_certificate_link(url: str) -> CertificateLink:
    env, segments = _split_link(url, "certificate", 6)
    context_type, context_value, nip, serial, hash_value, signature = segments
    if context_type not in CONTEXT_TYPES:
        raise QrError(f"context type {context_type!r} must be one of {', '.join(CONTEXT_TYPES)}")
    if not _SERIAL.fullmatch(serial):
        raise QrError(f"certificate serial {serial!r} must be upper-case hexadecimal")
    return CertificateLink(
        env,
        context_type,
        _check_segment(context_value, "context value"),
        _check_nip(nip),
        serial,
        normalise_hash(hash_value),
        _check_segment(signature, "signature"),
    )


def load_certificate(data: bytes) -> x509.Certificate:
    """An X.509 certificate from PEM or DER bytes."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise QrError(f"not an X.509 certificate (PEM or DER): {exc}") from exc


def load_signing_key(data: bytes, password: bytes | None = None) -> SigningKey:
    """A private key from PEM or DER (PKCS#8 / traditional), checked for KOD II use."""
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=password)
        else:
            key = serialization.load_der_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise QrError(f"cannot load the private key: {exc}") from exc
    return check_signing_key(key)
