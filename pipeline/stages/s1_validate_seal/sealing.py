"""The seal stage's work as plain functions: encrypt at rest, assign the issuing mode
and initial deadline, and build the QR links a billing system prints on an offline invoice.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pipeline.clock import iso, now_utc
from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.ksef.deadlines import Deadline, compute_deadline
from pipeline.ksef.keyring import Keyring
from pipeline.ksef.modes import mode_for_new_invoice
from pipeline.ksef.qr import (
    QrEnvironment,
    SigningKey,
    certificate_link,
    certificate_serial,
    check_signing_key,
    invoice_link,
)
from pipeline.ksef_api.environments import qr_name, required_name
from pipeline.runtime.private_files import read_private
from pipeline.runtime.settings import ValidateSealSettings
from pipeline.stages.s1_validate_seal.submission import CheckedInvoice
from topics.records import SealedInvoice, SealedPrivate
from topics.sealed import deflate, encode_sealed


@dataclass(frozen=True)
class OfflineCertificate:
    """A seller's KSeF offline certificate (KOD II signer); the key never leaves memory."""

    serial_hex: str
    key: SigningKey

    def __repr__(self) -> str:
        return f"OfflineCertificate(serial={self.serial_hex})"


PASSWORD_ENV = "KSEF_OFFLINE_KEY_PASSWORD"


def load_offline_certificates(directory: str | None, password: str | None = None
                              ) -> dict[str, OfflineCertificate]:
    """`{NIP}.crt` + `{NIP}.key` (PEM) per seller from KSEF_OFFLINE_CERT_DIR.

    The key file must be private (0600, else refused naming `chmod 600`). An encrypted
    key (PKCS#8 `ENCRYPTED PRIVATE KEY` or legacy PEM) is opened with the password in
    `{NIP}.pass` (0600, one line) or else `password` (KSEF_OFFLINE_KEY_PASSWORD).
    """
    if not directory:
        return {}
    found: dict[str, OfflineCertificate] = {}
    for crt in sorted(Path(directory).glob("*.crt")):
        key_path = crt.with_suffix(".key")
        if not key_path.exists():
            raise FileNotFoundError(f"offline certificate {crt} has no private key {key_path}")
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        key_pem = read_private(key_path, "offline certificate key")
        pass_path = crt.with_suffix(".pass")
        secret = (read_private(pass_path, "offline key password").rstrip(b"\r\n")
                  if pass_path.exists() else password.encode() if password else None)
        try:
            raw_key = serialization.load_pem_private_key(key_pem, secret)
        except TypeError:  # encrypted without a password, or a password for a plain key
            raise ValueError(
                f"offline certificate key {key_path}: " + (
                    f"is encrypted; put its password in {pass_path} (chmod 600) or "
                    f"{PASSWORD_ENV}" if secret is None else
                    "is not encrypted but a password was given")) from None
        except ValueError:
            raise ValueError(f"offline certificate key {key_path} does not open (wrong "
                             "password or not a PEM private key)") from None
        key = check_signing_key(raw_key)
        found[crt.stem] = OfflineCertificate(certificate_serial(cert), key)
    return found


def qr_environment(settings: ValidateSealSettings) -> QrEnvironment:
    """The QR host of the links: KSEF_ENV's (production invoices get production links,
    the emulator's test ones); an explicit KSEF_QR_ENV that disagrees is refused."""
    env_name = required_name(settings.ksef_env)
    return QrEnvironment.parse(qr_name(env_name, settings.qr_env))


@dataclass(frozen=True)
class SealConfig:
    keyring: Keyring
    qr_environment: QrEnvironment
    certificates: dict[str, OfflineCertificate]
    # Deflate level of the invoice inside the record: the pack stage's, so the ZIP entry
    # is the record's own DEFLATE stream and no invoice is compressed twice.
    level: int = 3

    @classmethod
    def build(cls, keyring: Keyring, settings: ValidateSealSettings) -> SealConfig:
        """The seal configuration of the stage's settings (QR host checked, offline
        certificates loaded)."""
        return cls(
            keyring=keyring,
            qr_environment=qr_environment(settings),
            certificates=load_offline_certificates(settings.offline_cert_dir,
                                                   settings.offline_key_password),
            level=settings.pack_level,
        )


@dataclass(frozen=True)
class SealedOutput:
    """A sealed invoice: its metadata, its record's bytes and the deadline it carries."""

    meta: SealedInvoice
    value: bytes
    deadline: Deadline


def seal_invoice(inv: CheckedInvoice, config: SealConfig, history: AnnouncementHistory,
                 *, ksef_reachable: bool = True, now: dt.datetime | None = None
                 ) -> SealedOutput:
    """The sealed record of a checked invoice: mode, deadline and QR links stamped in its
    metadata, the exact invoice bytes deflated and encrypted under the active key."""
    moment = now or now_utc()
    issued = dt.date.fromisoformat(inv.issue_date)
    mode = mode_for_new_invoice(issued, moment, history, ksef_reachable)
    deadline = compute_deadline(issued, mode, history)
    kod1 = invoice_link(config.qr_environment, inv.seller_nip, issued, inv.sha256).url
    kod2 = None
    cert = config.certificates.get(inv.seller_nip)
    if cert is not None and mode.is_offline:
        kod2 = certificate_link(
            config.qr_environment, context_type="Nip", context_value=inv.seller_nip,
            seller_nip=inv.seller_nip, certificate_serial_hex=cert.serial_hex,
            invoice_hash_value=inv.sha256, key=cert.key,
        ).url
    compression, payload = deflate(inv.xml, config.level)
    meta = SealedInvoice(
        invoice_id=inv.invoice_id, seller_nip=inv.seller_nip,
        invoice_number=inv.invoice_number, issue_date=inv.issue_date, kind=inv.kind,
        size=inv.size, sha256=inv.sha256, has_attachments=inv.has_attachments,
        mode=mode.value, key_id=config.keyring.active, qr_code_1=kod1,
        received_at=inv.received_at, sealed_at=iso(moment), origin=inv.origin,
        deadline=None if deadline.due is None else deadline.due.isoformat(),
        deadline_status=deadline.status.value, qr_code_2=kod2, source=inv.source,
        technical_correction_of=inv.technical_correction_of, compression=compression,
        crc32=zlib.crc32(inv.xml),
    )
    value = encode_sealed(meta, SealedPrivate(buyer_nip=inv.buyer_nip), payload,
                          config.keyring, config.keyring.nonce())
    return SealedOutput(meta, value, deadline)
