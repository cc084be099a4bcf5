"""Who a signing certificate identifies, and whether KSeF would let it in.

After the signature itself is verified (`xades_verify`), KSeF reports what remains as the
status of the authentication operation: 460 for certificate faults (validity dates,
revocation, an untrusted issuer, no usable identifier, an Offline certificate) and 415
when the subject has no permission in the requested context. This module decides that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pipeline.emulator.ca import OFFLINE, serial_hex
from pipeline.emulator.state import Emulator
from pipeline.emulator.timefmt import iso
from pipeline.emulator.xades_verify import SignedAuthRequest

CERT_FAILED = (460, "Uwierzytelnianie zakończone niepowodzeniem z powodu błędu certyfikatu")
NO_PERMISSIONS = (415, "Uwierzytelnianie zakończone niepowodzeniem")
INVALID_CERT = "Nieważny certyfikat"
REVOKED = "Certyfikat odwołany"
UNTRUSTED = "Niezaufany łańcuch certyfikatów"
WRONG_CERT = "Niepoprawny certyfikat"

# the identifier patterns of auth/podpis-xades.md
_NIP_SEAL = re.compile(r"VATPL.*?(\d{10})")
_NIP_PERSON = re.compile(r"(?:TINPL|NIP).*?(\d{10})")
_PESEL = re.compile(r"(?:PNOPL|PESEL).*?(\d{11})")

METHODS = {  # authenticationMethod -> (authenticationMethodInfo code, displayName)
    "InternalCertificate": ("internalCertificate", "Certyfikat KSeF"),
    "QualifiedSeal": ("qualifiedSeal", "Pieczęć kwalifikowana"),
    "QualifiedSignature": ("qualifiedSignature", "Podpis kwalifikowany"),
}


class Refused(Exception):
    """The operation fails with `status` and these details (KSeF's text, then ours)."""

    def __init__(self, status: tuple[int, str], *details: str) -> None:
        super().__init__(f"{status[0]}: {'; '.join(details)}")
        self.status = status
        self.details = list(details)


@dataclass(frozen=True)
class Subject:
    """The authenticated subject: identifier type (Nip, Pesel, Fingerprint) and value."""

    type: str
    value: str
    method: str
    serial: str


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex().upper()


def _attribute(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    return " ".join(str(a.value) for a in certificate.subject.get_attributes_for_oid(oid))


def identifier_of(certificate: x509.Certificate) -> tuple[str, str, str] | None:
    """(type, value, method) from the subject's organizationIdentifier or serialNumber."""
    seal = _NIP_SEAL.search(_attribute(certificate, NameOID.ORGANIZATION_IDENTIFIER))
    if seal:
        return "Nip", seal.group(1), "QualifiedSeal"
    serial_number = _attribute(certificate, NameOID.SERIAL_NUMBER)
    nip = _NIP_PERSON.search(serial_number)
    if nip:
        return "Nip", nip.group(1), "QualifiedSignature"
    pesel = _PESEL.search(serial_number)
    if pesel:
        return "Pesel", pesel.group(1), "QualifiedSignature"
    return None


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _trust(emu: Emulator, certificate: x509.Certificate, serial: str,
           chain_required: bool) -> tuple[str, str] | None:
    """Owner (type, value) of an emulator-issued certificate; None for a self-signed one."""
    issued = emu.certs.certificate(serial)
    if issued is not None and bytes(issued["der"]) == certificate.public_bytes(Encoding.DER):
        if issued["type"] == OFFLINE:
            raise Refused(CERT_FAILED, WRONG_CERT, f"certificate {serial} is a KSeF Offline "
                          "certificate (for KOD II); only Authentication ones can log in")
        return issued["owner_type"], issued["owner_value"]
    if certificate.issuer == certificate.subject and _issued_by(certificate, certificate):
        if chain_required:
            raise Refused(CERT_FAILED, UNTRUSTED, "verifyCertificateChain=true and the "
                          "certificate is self-signed")
        return None
    raise Refused(CERT_FAILED, UNTRUSTED, f"certificate {serial} is neither self-signed nor "
                  f"issued by the emulator CA (issuer {certificate.issuer.rfc4514_string()})")


def _check_dates(emu: Emulator, certificate: x509.Certificate, serial: str) -> None:
    now = emu.certificate_now()
    if now < certificate.not_valid_before_utc:
        raise Refused(CERT_FAILED, INVALID_CERT, f"certificate {serial} is not valid before "
                      f"{iso(certificate.not_valid_before_utc)} (now {iso(now)})")
    if now > certificate.not_valid_after_utc:
        raise Refused(CERT_FAILED, INVALID_CERT, f"certificate {serial} expired at "
                      f"{iso(certificate.not_valid_after_utc)} (now {iso(now)})")


def authenticate(emu: Emulator, request: SignedAuthRequest, *,
                 chain_required: bool = False) -> Subject:
    """The subject the certificate authenticates for the request's context; Refused when
    KSeF would fail the operation (460 certificate, 415 permissions)."""
    certificate = request.certificate
    serial = serial_hex(certificate.serial_number)
    owner = _trust(emu, certificate, serial, chain_required)
    _check_dates(emu, certificate, serial)
    revoked = emu.certs.revocation(serial)
    if revoked is not None:
        raise Refused(CERT_FAILED, REVOKED, f"certificate {serial} was revoked at "
                      f"{revoked['revoked']} ({revoked['reason']})")
    if request.subject_type == "certificateFingerprint":
        subject = Subject("Fingerprint", fingerprint(certificate),
                          "InternalCertificate" if owner else "QualifiedSignature", serial)
    elif owner is not None:
        subject = Subject(owner[0], owner[1], "InternalCertificate", serial)
    else:
        found = identifier_of(certificate)
        if found is None:
            raise Refused(CERT_FAILED, WRONG_CERT, "the certificate names no NIP "
                          "(organizationIdentifier VATPL-..., serialNumber TINPL-...) or PESEL; "
                          "use SubjectIdentifierType certificateFingerprint with a granted "
                          "fingerprint")
        subject = Subject(found[0], found[1], found[2], serial)
    context = request.context_nip
    if subject.type == "Nip" and subject.value == context:
        return subject
    if not emu.certs.permissions(context, subject.type, subject.value):
        raise Refused(NO_PERMISSIONS, "Brak przypisanych uprawnień",
                      f"{subject.type} {subject.value} has no permission in the context of "
                      f"NIP {context} (grant one with POST /v2/testdata/permissions)")
    return subject
