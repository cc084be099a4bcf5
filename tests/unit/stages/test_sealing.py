"""The seal stage's work without Kafka: ciphertext only, mode, deadline, QR links."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pipeline.clock import WARSAW
from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.ksef.keyring import Keyring
from pipeline.ksef.qr import QrEnvironment, parse_certificate_link, parse_invoice_link
from pipeline.stages.s1_validate_seal.sealing import (
    SealConfig,
    load_offline_certificates,
    seal_invoice,
)
from pipeline.stages.s1_validate_seal.submission import (
    AttachmentPolicy,
    CheckedInvoice,
    Submission,
    check_submission,
)
from topics.records import KafkaRef
from topics.sealed import open_sealed, read_meta

(SELLER,) = seller_nips(1, seed=12)
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=WARSAW)
RING = Keyring({"k1": b"\x07" * 32}, "k1")


def validated(issued: dt.date) -> tuple[CheckedInvoice, bytes]:
    xml = make_invoice(seller_nip=SELLER, number="S/1", issue_date=issued, seed=3)
    sub = Submission(b"inv-s", xml, {}, KafkaRef("t", 0, 1), NOW.isoformat())
    out = check_submission(sub, InvoiceChecker(), NOW.date(), AttachmentPolicy())
    assert isinstance(out, CheckedInvoice)
    return out, xml


def offline_cert(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "offline")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0x1234ABCD)
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    (directory / f"{SELLER}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{SELLER}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (directory / f"{SELLER}.key").chmod(0o600)  # a key others may read is refused


def test_today_is_online_and_sealed_record_holds_no_plaintext() -> None:
    inv, xml = validated(NOW.date())
    config = SealConfig(RING, QrEnvironment.TEST, {})
    out = seal_invoice(inv, config, AnnouncementHistory(), now=NOW)
    rec, raw = out.meta, out.value
    assert out.deadline.due is not None and out.deadline.due.isoformat() == rec.deadline
    assert rec.mode == "online" and rec.deadline == NOW.date().isoformat()
    assert rec.qr_code_2 is None
    opened = open_sealed(raw, RING)
    assert opened.invoice() == xml and opened.meta == rec == read_meta(raw)
    assert len(raw) < len(xml)  # deflated before encryption
    for i in range(0, len(xml) - 16, 16):
        assert xml[i:i + 16] not in raw
    assert base64.b64encode(xml)[:64] not in raw
    link = parse_invoice_link(rec.qr_code_1)
    assert (link.seller_nip, link.issued) == (SELLER, NOW.date())


def test_earlier_issue_date_is_offline24_with_kod2_when_a_certificate_exists(
        tmp_path: Path) -> None:
    offline_cert(tmp_path)
    config = SealConfig(RING, QrEnvironment.TEST, load_offline_certificates(str(tmp_path)))
    inv, _ = validated(NOW.date() - dt.timedelta(days=1))  # Thu -> due Fri
    rec = seal_invoice(inv, config, AnnouncementHistory(), now=NOW).meta
    assert rec.mode == "offline24" and rec.deadline == NOW.date().isoformat()
    assert rec.qr_code_2 is not None
    kod2 = parse_certificate_link(rec.qr_code_2)
    cert = x509.load_pem_x509_certificate((tmp_path / f"{SELLER}.crt").read_bytes())
    assert kod2.seller_nip == SELLER and kod2.verify(cert)
