"""The pure helpers behind `ksef-pipeline credentials`: the CSR subject KSeF dictates, the
verdicts of `check`, and the atomic credentials-file update of `enroll`."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pipeline.credentials.health import NOW_FAILS, OK, WILL_FAIL, future_verdict, row_of
from pipeline.credentials.store import ContextStatus
from pipeline.credentials.writing import set_certificate_entry, write_secret
from pipeline.emulator.enrollment import check_csr, enrollment_data
from pipeline.ksef.credentials import CertificateCredential, TokenCredential
from pipeline.ksef.enrollment import build_csr, new_key, subject_from_enrollment_data
from pipeline.ksef.selfsigned import mint_test_certificate

NIP = "5265877635"
NOW = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)


def test_csr_subject_is_exactly_the_enrollment_data() -> None:
    for shape in ("seal", "person"):
        seal = mint_test_certificate(NIP, subject=shape)  # type: ignore[arg-type]
        data = enrollment_data(seal.certificate)
        for key_type in ("ec", "rsa"):
            csr = build_csr(data, new_key(key_type))  # type: ignore[arg-type]
            assert check_csr(csr.public_bytes(Encoding.DER), seal.certificate) is not None


def test_subject_accepts_sdk_snake_case_and_several_given_names() -> None:
    name = subject_from_enrollment_data({"common_name": "Jan Kowalski", "country_name": "PL",
                                         "given_name": ["Jan", "Maria"], "surname": "K",
                                         "serial_number": f"TINPL-{NIP}", "unique_identifier":
                                         None})
    assert [a.value for a in name.get_attributes_for_oid(NameOID.GIVEN_NAME)] == ["Jan",
                                                                                  "Maria"]
    assert not name.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER)
    with pytest.raises(ValueError):
        subject_from_enrollment_data({"common_name": None})


def _certificate(days: float) -> ContextStatus:
    made = mint_test_certificate(NIP, key="ec", now=NOW, not_after=NOW + dt.timedelta(days=days))
    credential = CertificateCredential(NIP, made.certificate, made.private_key)
    return ContextStatus(NIP, "certificate", "x.key", credential, None)


def test_certificate_window() -> None:
    status = _certificate(days=30.5)
    assert future_verdict(status, NOW, 30) == (OK, None)
    code, why = future_verdict(status, NOW, 31)
    assert code == WILL_FAIL and why is not None and "expires in 30 days" in why
    code, why = future_verdict(status, NOW + dt.timedelta(days=40), 30)
    assert code == WILL_FAIL and why is not None and "expired" in why
    assert row_of(status, NOW).days_to_expiry == 30


def test_tokens_end_with_2026() -> None:
    status = ContextStatus(NIP, "token", "t", TokenCredential(NIP, "secret"), None)
    last_day = dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)
    code, why = future_verdict(status, last_day, 30)
    assert code == OK and why is not None and "0 days left" in why
    code, why = future_verdict(status, dt.datetime(2027, 1, 1, tzinfo=dt.UTC), 30)
    assert code == WILL_FAIL and why is not None and "2026-12-31" in why
    assert "secret" not in repr(row_of(status, NOW))
    assert NOW_FAILS == 1


def test_credentials_entry_replaced_atomically_keeping_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"contexts": {NIP: {"token_file": "t"},
                                             "7010002137": {"token": "x"}}, "note": 1}))
    path.chmod(0o640)
    inode = path.stat().st_ino
    previous = set_certificate_entry(path, NIP, tmp_path / "certs" / "a.crt",
                                     tmp_path / "certs" / "a.key")
    assert previous == {"token_file": "t"}
    document = json.loads(path.read_text())
    assert document["contexts"] == {NIP: {"certificate": "certs/a.crt",
                                          "private_key": "certs/a.key"},
                                    "7010002137": {"token": "x"}}
    assert document["note"] == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode  # replaced, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["credentials.json"]


def test_new_credentials_file_is_0600_and_broken_one_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    set_certificate_entry(path, NIP, Path("/abs/a.crt"), Path("/abs/a.key"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["contexts"][NIP]["certificate"] == "/abs/a.crt"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError):
        set_certificate_entry(broken, NIP, Path("a.crt"), Path("a.key"))
    assert broken.read_text() == "{not json"


def test_secret_replaces_a_loose_file_with_a_0600_one(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    key.write_text("old")
    key.chmod(0o644)
    write_secret(key, b"new")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_bytes() == b"new"
