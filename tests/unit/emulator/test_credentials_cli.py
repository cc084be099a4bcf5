"""`ksef-pipeline credentials list|check|enroll|revoke` against an in-process emulator.

The CLI runs in a worker thread (it has its own event loop, as from a shell) while the
emulator serves on the test's loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pipeline.cli.main import main
from pipeline.credentials import CredentialStore
from pipeline.demo.samples import seller_nips
from pipeline.emulator import RunningEmulator
from pipeline.emulator.routes_auth import issue_ksef_token
from pipeline.emulator.routes_certificates import revoke_certificate
from pipeline.ksef.credentials import CertificateCredential
from pipeline.ksef.selfsigned import TestCertificate, mint_test_certificate
from pipeline.stages.s1_validate_seal.sealing import load_offline_certificates

GOOD, SHORT, TOKEN, OTHER = seller_nips(4, seed=131)


class Setup:
    """A credentials file in `directory` the CLI reads through KSEF_CREDENTIALS_FILE."""

    def __init__(self, directory: Path, emulator: RunningEmulator) -> None:
        self.directory = directory
        self.file = directory / "credentials.json"
        self.emulator = emulator
        self.contexts: dict[str, dict[str, str]] = {}

    def certificate(self, nip: str, **validity: dt.datetime) -> TestCertificate:
        made = mint_test_certificate(nip, key="ec", **validity)
        (self.directory / f"{nip}.crt").write_bytes(made.certificate_pem())
        key = self.directory / f"{nip}.key"
        key.write_bytes(made.key_pem())
        key.chmod(0o600)
        self.contexts[nip] = {"certificate": f"{nip}.crt", "private_key": f"{nip}.key"}
        self.save()
        return made

    def token(self, nip: str) -> None:
        path = self.directory / f"{nip}.token"
        path.write_text(str(issue_ksef_token(self.emulator.emulator, nip)["token"]))
        path.chmod(0o600)
        self.contexts[nip] = {"token_file": path.name}
        self.save()

    def save(self) -> None:
        self.file.write_text(json.dumps({"contexts": self.contexts}))
        self.file.chmod(0o600)

    def entries(self) -> dict[str, dict[str, str]]:
        contexts: dict[str, dict[str, str]] = json.loads(self.file.read_text())["contexts"]
        return contexts


@pytest.fixture
def setup(tmp_path: Path, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[Setup]:
    for name in ("KSEF_TOKENS_FILE", "KSEF_OFFLINE_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KSEF_ENV", "emulator")
    monkeypatch.setenv("KSEF_API_URL", emulator.base_url)
    monkeypatch.setenv("KSEF_LIMITS", "off")
    directory = tmp_path / "creds"
    directory.mkdir()
    made = Setup(directory, emulator)
    monkeypatch.setenv("KSEF_CREDENTIALS_FILE", str(made.file))
    yield made


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["credentials", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_check_good_certificate_exits_0(setup: Setup, capsys: pytest.CaptureFixture[str]
                                              ) -> None:
    setup.certificate(GOOD)
    code, out, _ = await cli(capsys, "check")
    assert code == 0, out
    assert f"[1/1] {GOOD} certificate, " in out and "VATPL-" in out
    assert "ok    authenticated now" in out
    assert out.rstrip().endswith("-> exit 0")


async def test_check_revoked_certificate_exits_1_with_reason(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    made = setup.certificate(GOOD)
    assert revoke_certificate(setup.emulator.emulator, f"{made.certificate.serial_number:X}",
                              "KeyCompromise")
    code, out, _ = await cli(capsys, "check")
    assert code == 1, out
    assert "FAIL  KSeF refused authentication (reason revoked)" in out


async def test_check_token_after_2026_exits_2_and_warns_before(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.certificate(GOOD)
    setup.token(TOKEN)
    code, out, _ = await cli(capsys, "check", "--at", "2026-12-30")
    assert code == 0, out
    assert out.count("authenticated now") == 2
    assert "WARN  KSeF token, accepted only until 2026-12-31 (2 days left)" in out
    code, out, _ = await cli(capsys, "check", "--at", "2027-01-02")
    assert code == 2, out
    assert "FAIL  from 2027-01-02: KSeF tokens authenticate only until 2026-12-31" in out
    assert "2 context(s): 1 fine, 0 cannot authenticate now, 1 will not" in out
    token = (setup.directory / f"{TOKEN}.token").read_text()
    assert token not in out


async def test_check_certificate_expiring_within_window_exits_2(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    setup.certificate(SHORT, not_after=now + dt.timedelta(days=10, hours=1))
    code, out, _ = await cli(capsys, "check")
    assert code == 2, out
    assert "ok    authenticated now" in out  # fine today, not for the next 30 days
    assert "FAIL  from" in out and "certificate expires in 10 days" in out
    code, out, _ = await cli(capsys, "check", "--within", "5")
    assert code == 0, out


async def test_check_configuration_problem_exits_1_without_live_call(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.certificate(GOOD)
    (setup.directory / f"{GOOD}.key").chmod(0o644)
    code, out, _ = await cli(capsys, "check")
    assert code == 1, out
    assert "FAIL  permissions:" in out and "chmod 600" in out
    assert "authenticating" not in out


async def test_list_table_and_json(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    made = setup.certificate(GOOD)
    setup.token(TOKEN)
    code, out, _ = await cli(capsys, "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["NIP", "METHOD", "NOT", "AFTER"]
    by_nip = {row.split()[0]: row for row in rows if row[:10].isdigit()}
    not_after = made.certificate.not_valid_after_utc
    assert by_nip[GOOD].split()[1:3] == ["certificate", f"{not_after:%Y-%m-%d}"]
    assert f"VATPL-{GOOD}" in by_nip[GOOD]
    assert by_nip[TOKEN].split()[1:3] == ["token", "2026-12-31"]
    code, out, _ = await cli(capsys, "list", "--json")
    listed = {c["nip"]: c for c in json.loads(out)["contexts"]}
    assert listed[GOOD]["method"] == "certificate"
    assert listed[GOOD]["not_after"] == not_after.isoformat()
    assert listed[GOOD]["problem"] is None
    assert listed[TOKEN]["source"].endswith(f"{TOKEN}.token")


async def test_enroll_authentication_then_revoke(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.certificate(GOOD)
    setup.token(OTHER)
    code, out, err = await cli(capsys, "enroll", "--nip", GOOD, "--type", "Authentication",
                               "--name", "pipeline test")
    assert code == 0, out + err
    assert "enrollment status 200" in out and "[6/6]" in out
    entry = setup.entries()[GOOD]
    assert set(entry) == {"certificate", "private_key"}
    assert setup.entries()[OTHER] == {"token_file": f"{OTHER}.token"}  # others kept
    assert stat.S_IMODE(setup.file.stat().st_mode) == 0o600
    key_path = setup.directory / entry["private_key"]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert not list(setup.directory.glob("*.pending"))
    issued = x509.load_pem_x509_certificate((setup.directory / entry["certificate"]).read_bytes())
    assert issued.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "KSeF Emulator CA")
    serial = f"{issued.serial_number:X}"
    assert f"issued: serial {serial}" in out
    credential = CredentialStore(setup.file).get(GOOD)
    assert isinstance(credential, CertificateCredential)
    assert credential.certificate == issued  # the store reads the new pair
    code, out, _ = await cli(capsys, "check")
    assert code == 0, out  # the new certificate logs in
    code, out, err = await cli(capsys, "revoke", "--nip", GOOD, "--serial", serial,
                               "--reason", "Superseded")
    assert code == 0, out + err
    assert f"revoked {serial}" in out
    code, out, _ = await cli(capsys, "check")
    assert code == 1, out
    assert "(reason revoked)" in out


async def test_enroll_needs_a_certificate_login_and_migrates_a_token(
        setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup.token(TOKEN)
    code, _, err = await cli(capsys, "enroll", "--nip", TOKEN, "--type", "Authentication")
    assert code == 1
    assert "authenticates with a KSeF token" in err and "--auth-cert" in err
    seal = mint_test_certificate(TOKEN, key="rsa")
    (tmp_path / "seal.crt").write_bytes(seal.certificate_pem())
    (tmp_path / "seal.key").write_bytes(seal.key_pem())
    (tmp_path / "seal.key").chmod(0o600)
    code, out, err = await cli(capsys, "enroll", "--nip", TOKEN, "--type", "Authentication",
                               "--key-type", "rsa", "--auth-cert", str(tmp_path / "seal.crt"),
                               "--auth-key", str(tmp_path / "seal.key"))
    assert code == 0, out + err
    assert "was: token_file" in out and "remove the token" in out
    assert set(setup.entries()[TOKEN]) == {"certificate", "private_key"}
    code, out, _ = await cli(capsys, "check", "--at", "2027-01-02")
    assert code == 0, out  # off tokens: fine in 2027


async def test_enroll_offline_feeds_kod_ii(setup: Setup, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    setup.certificate(GOOD)
    before = setup.entries()
    offline = tmp_path / "offline"
    monkeypatch.setenv("KSEF_OFFLINE_CERT_DIR", str(offline))
    code, out, err = await cli(capsys, "enroll", "--nip", GOOD, "--type", "Offline")
    assert code == 0, out + err
    assert f"KSEF_OFFLINE_CERT_DIR={offline} holds it" in out
    assert setup.entries() == before  # an Offline certificate does not authenticate
    assert stat.S_IMODE((offline / f"{GOOD}.key").stat().st_mode) == 0o600
    loaded = load_offline_certificates(str(offline))
    issued = x509.load_pem_x509_certificate((offline / f"{GOOD}.crt").read_bytes())
    assert set(loaded) == {GOOD}
    assert loaded[GOOD].serial_hex.upper() == f"{issued.serial_number:X}"


async def test_check_broken_file_or_nothing_configured_exits_1(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.file.write_text("{not json")
    code, out, _ = await cli(capsys, "check")
    assert code == 1, out
    assert "FAIL  unreadable:" in out and "not JSON" in out
    setup.file.write_text('{"contexts": {}}')
    code, out, _ = await cli(capsys, "check")
    assert code == 1, out
    assert out.startswith("no contexts configured")


async def test_refused_enrollment_drops_its_key_and_keeps_the_entry(
        setup: Setup, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import credentials_enroll
    from pipeline.ksef.enrollment import new_key

    setup.certificate(GOOD)
    key = new_key("ec")
    monkeypatch.setattr(credentials_enroll, "new_key", lambda key_type: key)
    code, out, err = await cli(capsys, "enroll", "--nip", GOOD, "--type", "Authentication")
    assert code == 0, out + err
    entry = setup.entries()[GOOD]
    code, out, err = await cli(capsys, "enroll", "--nip", GOOD, "--type", "Authentication")
    assert code == 1, out
    assert "certificate enrollment" in err and "already" in err  # the key is certified
    assert not list(setup.directory.glob("*.pending"))
    assert setup.entries()[GOOD] == entry


async def test_revoke_unknown_serial_exits_1_with_ksef_refusal(
        setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.certificate(GOOD)
    code, _, err = await cli(capsys, "revoke", "--nip", GOOD, "--serial", "00000000000000AA")
    assert code == 1
    assert err.startswith("credentials revoke: ") and "00000000000000AA" in err
