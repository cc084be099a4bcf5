"""CredentialStore: every format, permission refusal, reload on change, legacy tokens."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pipeline.credentials import CredentialStore
from pipeline.ksef.credentials import CertificateCredential, TokenCredential
from pipeline.ksef.selfsigned import TestCertificate, mint_test_certificate
from pipeline.ksef_api.errors import KsefCredentialError, KsefError

NIP = "5265877635"
OTHER = "7010002137"
NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def rsa_cert() -> TestCertificate:
    return mint_test_certificate(NIP, key="rsa", now=NOW)


@pytest.fixture(scope="module")
def ec_cert() -> TestCertificate:
    return mint_test_certificate(NIP, key="ec", subject="person", now=NOW)


def write(path: Path, data: bytes | str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def bump(path: Path) -> None:
    """Make a rewrite visible even within one mtime tick."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def credentials(tmp: Path, contexts: dict[str, Any], mode: int = 0o644) -> Path:
    return write(tmp / "credentials.json", json.dumps({"contexts": contexts}), mode)


def store(path: Path | None, tokens: Path | None = None,
          environ: dict[str, str] | None = None) -> CredentialStore:
    return CredentialStore(path, tokens, environ={} if environ is None else environ,
                           clock=lambda: NOW)


def test_pem_certificate_and_key_relative_to_the_file(tmp_path: Path,
                                                      rsa_cert: TestCertificate) -> None:
    write(tmp_path / "certs/seller.crt", rsa_cert.certificate_pem(), 0o644)
    write(tmp_path / "certs/seller.key", rsa_cert.key_pem())
    path = credentials(tmp_path, {NIP: {"certificate": "certs/seller.crt",
                                        "private_key": "certs/seller.key"}})
    credential = store(path).get(NIP)
    assert isinstance(credential, CertificateCredential)
    assert credential.kind == "certificate"
    assert credential.subject_identifier_type == "certificateSubject"
    assert credential.certificate == rsa_cert.certificate
    info = credential.info
    assert info.nip == NIP and "VATPL-5265877635" in info.subject
    assert info.key_type == "RSA 2048"
    assert info.not_before == NOW - dt.timedelta(days=1)
    assert info.days_to_expiry(NOW) == 365
    assert "PRIVATE" not in repr(credential) and "BEGIN" not in repr(credential)


def test_der_certificate_and_encrypted_der_key_with_password_file(
        tmp_path: Path, ec_cert: TestCertificate) -> None:
    write(tmp_path / "c.der", ec_cert.certificate_der(), 0o644)
    write(tmp_path / "k.der", ec_cert.key_der(b"s3cret pass"))
    write(tmp_path / "k.pass", "s3cret pass\n")
    path = credentials(tmp_path, {NIP: {
        "certificate": str(tmp_path / "c.der"), "private_key": "k.der",
        "password_file": "k.pass", "subject_identifier_type": "certificateFingerprint"}})
    credential = store(path).get(NIP)
    assert isinstance(credential, CertificateCredential)
    assert isinstance(credential.private_key, ec.EllipticCurvePrivateKey)
    assert credential.subject_identifier_type == "certificateFingerprint"
    assert credential.info.nip == NIP  # from serialNumber TINPL-<NIP>
    assert credential.info.key_type == "EC secp256r1"


def test_pkcs12_with_password_file(tmp_path: Path, rsa_cert: TestCertificate) -> None:
    write(tmp_path / "seller.p12", rsa_cert.pkcs12(b"p12-pass"))
    write(tmp_path / "seller.pass", "p12-pass")
    path = credentials(tmp_path, {NIP: {"pkcs12": "seller.p12",
                                        "password_file": "seller.pass"}})
    credential = store(path).get(NIP)
    assert isinstance(credential, CertificateCredential)
    assert isinstance(credential.private_key, rsa.RSAPrivateKey)
    expected = rsa_cert.certificate.fingerprint(hashes.SHA256()).hex().upper()
    assert credential.info.fingerprint_sha256 == expected


def test_wrong_password_is_reported_without_the_password(
        tmp_path: Path, rsa_cert: TestCertificate) -> None:
    write(tmp_path / "seller.p12", rsa_cert.pkcs12(b"right"))
    write(tmp_path / "seller.pass", "wrong-one")
    write(tmp_path / "k.pem", rsa_cert.key_pem(b"right"))
    write(tmp_path / "c.pem", rsa_cert.certificate_pem())
    path = credentials(tmp_path, {
        NIP: {"pkcs12": "seller.p12", "password_file": "seller.pass"},
        OTHER: {"certificate": "c.pem", "private_key": "k.pem"}})  # encrypted, no password
    s = store(path)
    with pytest.raises(KsefCredentialError) as caught:
        s.get(NIP)
    assert caught.value.problem == "wrong-password"
    assert "seller.p12" in str(caught.value) and "wrong-one" not in str(caught.value)
    with pytest.raises(KsefCredentialError, match="encrypted: name its password file"):
        s.get(OTHER)


@pytest.mark.parametrize("secret", ["key", "pass", "token"])
def test_secret_files_open_to_group_or_others_are_refused(
        tmp_path: Path, rsa_cert: TestCertificate, secret: str) -> None:
    write(tmp_path / "c.pem", rsa_cert.certificate_pem(), 0o644)
    write(tmp_path / "k.pem", rsa_cert.key_pem(b"pw"), 0o640 if secret == "key" else 0o600)
    write(tmp_path / "k.pass", "pw", 0o604 if secret == "pass" else 0o600)
    write(tmp_path / "t.token", "tok", 0o644 if secret == "token" else 0o600)
    path = credentials(tmp_path, {
        NIP: {"certificate": "c.pem", "private_key": "k.pem", "password_file": "k.pass"},
        OTHER: {"token_file": "t.token"}})
    s = store(path)
    asked, bad = (OTHER, "t.token") if secret == "token" else (NIP, f"k.{secret[:4]}")
    with pytest.raises(KsefCredentialError) as caught:
        s.get(asked)
    assert caught.value.problem == "permissions"
    assert str(tmp_path / (bad if secret != "key" else "k.pem")) in str(caught.value)
    assert "chmod 600" in str(caught.value)
    fine = NIP if asked == OTHER else OTHER  # the other context is unaffected
    assert s.get(fine) is not None


def test_inline_token_needs_a_private_credentials_file(tmp_path: Path) -> None:
    path = credentials(tmp_path, {NIP: {"token": "inline-secret"}}, mode=0o644)
    s = store(path)
    with pytest.raises(KsefCredentialError, match="chmod 600") as caught:
        s.get(NIP)
    assert "inline-secret" not in str(caught.value)
    path.chmod(0o600)
    credential = s.get(NIP)
    assert isinstance(credential, TokenCredential) and credential.token == "inline-secret"
    assert "inline-secret" not in repr(credential) and "inline-secret" not in repr(s)


def test_reload_when_the_file_or_a_named_file_changes(
        tmp_path: Path, rsa_cert: TestCertificate, ec_cert: TestCertificate) -> None:
    write(tmp_path / "t.token", "first")
    path = credentials(tmp_path, {NIP: {"token_file": "t.token"}})
    s = store(path)
    first = s.get(NIP)
    assert isinstance(first, TokenCredential) and first.token == "first"
    write(tmp_path / "t.token", "second")
    bump(tmp_path / "t.token")
    second = s.get(NIP)
    assert isinstance(second, TokenCredential) and second.token == "second"
    # the operator moves the context to a certificate: the file itself changes
    write(tmp_path / "c.pem", ec_cert.certificate_pem(), 0o644)
    write(tmp_path / "k.pem", ec_cert.key_pem())
    credentials(tmp_path, {NIP: {"certificate": "c.pem", "private_key": "k.pem"}})
    bump(path)
    third = s.get(NIP)
    assert isinstance(third, CertificateCredential)
    # a renewed certificate replaces the files in place
    write(tmp_path / "c.pem", rsa_cert.certificate_pem(), 0o644)
    write(tmp_path / "k.pem", rsa_cert.key_pem())
    bump(tmp_path / "k.pem")
    fourth = s.get(NIP)
    assert isinstance(fourth, CertificateCredential)
    assert fourth.certificate == rsa_cert.certificate and fourth != third
    assert s.get(NIP) is fourth  # unchanged files: the cached credential


def test_legacy_tokens_file_and_environment(tmp_path: Path, rsa_cert: TestCertificate) -> None:
    tokens = write(tmp_path / "tokens.json", json.dumps({NIP: "file-token",
                                                         OTHER: "other-token"}))
    write(tmp_path / "c.pem", rsa_cert.certificate_pem(), 0o644)
    write(tmp_path / "k.pem", rsa_cert.key_pem())
    s = store(None, tokens, {f"KSEF_TOKEN_{OTHER}": "env-token"})
    legacy = s.get(NIP)
    assert isinstance(legacy, TokenCredential) and legacy.token == "file-token"
    env = s.get(OTHER)
    assert isinstance(env, TokenCredential) and env.token == "env-token"
    assert env.source == f"KSEF_TOKEN_{OTHER}"
    assert s.get("1234563218") is None
    # the credentials file wins over both
    path = credentials(tmp_path, {OTHER: {"certificate": "c.pem", "private_key": "k.pem"}})
    s = store(path, tokens, {f"KSEF_TOKEN_{OTHER}": "env-token"})
    assert isinstance(s.get(OTHER), CertificateCredential)
    assert isinstance(s.get(NIP), TokenCredential)
    # the legacy file is re-read on change and must be private too
    write(tmp_path / "tokens.json", json.dumps({NIP: "renewed"}))
    bump(tokens)
    renewed = s.get(NIP)
    assert isinstance(renewed, TokenCredential) and renewed.token == "renewed"
    tokens.chmod(0o644)
    bump(tokens)
    with pytest.raises(KsefCredentialError, match="chmod 600"):
        s.get(NIP)


def test_contexts_lists_every_problem_without_raising(
        tmp_path: Path, rsa_cert: TestCertificate) -> None:
    expired = mint_test_certificate(OTHER, key="ec", now=NOW - dt.timedelta(days=400))
    write(tmp_path / "ok.crt", rsa_cert.certificate_pem(), 0o644)
    write(tmp_path / "ok.key", rsa_cert.key_pem())
    write(tmp_path / "old.crt", expired.certificate_pem(), 0o644)
    write(tmp_path / "old.key", expired.key_pem())
    write(tmp_path / "open.token", "t", 0o666)
    path = credentials(tmp_path, {
        NIP: {"certificate": "ok.crt", "private_key": "ok.key"},
        OTHER: {"certificate": "old.crt", "private_key": "old.key"},
        "1234563218": {"certificate": "missing.crt", "private_key": "ok.key"},
        "9876543210": {"token_file": "open.token"},
        "1111111111": {"token": "x", "pkcs12": "a.p12"},
    })
    statuses = {s.nip: s for s in store(path, None, {"KSEF_TOKEN_2222222222": "t"}).contexts()}
    assert statuses[NIP].problem is None and statuses[NIP].method == "certificate"
    assert statuses[OTHER].problem is not None and statuses[OTHER].problem.problem == "expired"
    assert statuses[OTHER].credential is not None  # still shown with its dates
    assert statuses["1234563218"].problem is not None
    assert statuses["1234563218"].problem.problem == "missing-file"
    assert statuses["9876543210"].problem is not None
    assert statuses["9876543210"].problem.problem == "permissions"
    assert statuses["1111111111"].problem is not None
    assert statuses["1111111111"].problem.problem == "invalid"
    assert statuses["2222222222"].method == "token"
    assert statuses["2222222222"].source == "KSEF_TOKEN_2222222222"


def test_key_of_another_certificate_and_unreadable_file(
        tmp_path: Path, rsa_cert: TestCertificate, ec_cert: TestCertificate) -> None:
    write(tmp_path / "c.pem", rsa_cert.certificate_pem(), 0o644)
    write(tmp_path / "k.pem", ec_cert.key_pem())
    path = credentials(tmp_path, {NIP: {"certificate": "c.pem", "private_key": "k.pem"}})
    with pytest.raises(KsefCredentialError, match="does not belong to the certificate"):
        store(path).get(NIP)
    broken = write(tmp_path / "broken.json", "{not json")
    with pytest.raises(KsefCredentialError, match="not JSON") as caught:
        store(broken).get(NIP)
    assert isinstance(caught.value, KsefError)  # the stages wait, they do not reject
    assert [s.nip for s in store(broken).contexts()] == ["*"]


def test_weak_rsa_key_is_refused(tmp_path: Path) -> None:
    weak = mint_test_certificate(NIP, key=rsa.generate_private_key(65537, 1024))
    write(tmp_path / "c.pem", weak.certificate_pem(), 0o644)
    write(tmp_path / "k.pem", weak.key_pem())
    path = credentials(tmp_path, {NIP: {"certificate": "c.pem", "private_key": "k.pem"}})
    with pytest.raises(KsefCredentialError, match="at least 2048"):
        store(path).get(NIP)


def test_stamps_change_with_the_credentials_file_and_the_files_it_names(
        tmp_path: Path, rsa_cert: TestCertificate) -> None:
    write(tmp_path / "seller.crt", rsa_cert.certificate_pem(), 0o644)
    key = write(tmp_path / "seller.key", rsa_cert.key_pem())
    path = credentials(tmp_path, {NIP: {"certificate": "seller.crt",
                                        "private_key": "seller.key"}})
    tokens = write(tmp_path / "tokens.json", json.dumps({OTHER: "t"}))
    s = store(path, tokens)
    first = s.stamps()
    assert s.stamps() == first  # nothing changed
    bump(key)  # a renewed key in place: the held context is tried at once
    second = s.stamps()
    assert second != first
    bump(tokens)
    assert s.stamps() != second
