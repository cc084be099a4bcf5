"""Keys fail closed (issue 16 point 5): no keyring is generated behind an operator's back,
secret files others may read are refused, a rotated keyring is re-read without a restart,
an invoice of a missing key waits instead of being rejected, KOD II keys may be encrypted.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest import MonkeyPatch

from pipeline.cli.main import main
from pipeline.ksef.keyring import Keyring, KeyringError, MissingKeyError
from pipeline.runtime.keyring_file import load_keyring, new_keyring_json

REPO = Path(__file__).resolve().parents[2]


def no_keyring_env(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.delenv("KSEF_KEYRING_FILE", raising=False)
    monkeypatch.delenv("KSEF_KEYRING", raising=False)


# --- permissions ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o666, 0o602])
def test_keyring_others_may_read_or_write_is_refused(
        tmp_path: Path, monkeypatch: MonkeyPatch, mode: int) -> None:
    path = tmp_path / "keyring.json"
    path.write_bytes(new_keyring_json())
    path.chmod(mode)
    monkeypatch.setenv("KSEF_KEYRING_FILE", str(path))
    with pytest.raises(KeyringError, match=f"chmod 600 {path}"):
        load_keyring()
    path.chmod(0o600)
    assert load_keyring().active == "k1"


# --- no keyring, no start ------------------------------------------------------------


def test_without_a_keyring_loading_refuses_naming_keyring_init(
        tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    no_keyring_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyringError) as caught:
        load_keyring()
    assert "ksef-pipeline keyring init" in str(caught.value)
    assert "KSEF_KEYRING_FILE" in str(caught.value)
    assert not list(tmp_path.rglob("keyring.json"))


def _worker(tmp_path: Path, stages: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KSEF_KEYRING")}
    # No broker listens here: a worker that got past the keyring check would hang on it.
    base.update(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", KSEF_TOPIC_REPLICATION="1",
                KSEF_TOPIC_MIN_ISR="1", KSEF_ENV="emulator", PYTHONPATH=str(REPO), **env)
    data = tmp_path / "data" / "worker-0"
    try:
        return subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "worker", "--stages", stages,
             "--data-dir", str(data)], cwd=tmp_path, env=base, capture_output=True,
            text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker started (it hung on the absent broker) instead of refusing")


@pytest.mark.parametrize("stages", ["validate", "pack", "submit"])
def test_worker_without_a_keyring_refuses_to_start(tmp_path: Path, stages: str) -> None:
    done = _worker(tmp_path, stages)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "ksef-pipeline keyring init" in done.stderr
    assert not list(tmp_path.rglob("keyring.json")), "a keyring was generated"


def test_worker_with_a_world_readable_keyring_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_bytes(new_keyring_json())
    path.chmod(0o644)
    done = _worker(tmp_path, "validate", KSEF_KEYRING_FILE=str(path))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"chmod 600 {path}" in done.stderr


# --- the keyring command ----------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_keyring_init_is_private_and_never_overwrites(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "secrets" / "keyring.json"
    code, out, _ = cli(capsys, "keyring", "init", "--file", str(path))
    assert code == 0 and "k1" in out
    assert path.stat().st_mode & 0o777 == 0o600
    before = path.read_bytes()
    code, _, err = cli(capsys, "keyring", "init", "--file", str(path))
    assert code == 1 and "refusing to overwrite" in err
    assert path.read_bytes() == before
    assert orjson.loads(before)["keys"]["k1"] not in out + err  # no key material shown


def test_keyring_rotate_adds_an_active_key_and_keeps_the_old(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keyring.json"
    assert cli(capsys, "keyring", "init", "--file", str(path))[0] == 0
    old = Keyring.from_json(path.read_bytes()).seal(b"<Faktura/>", b"inv-1")
    code, out, _ = cli(capsys, "keyring", "rotate", "--file", str(path))
    assert code == 0 and "k2" in out
    ring = Keyring.from_json(path.read_bytes())
    assert (ring.active, ring.key_ids) == ("k2", ["k1", "k2"])
    assert ring.open(old, b"inv-1") == b"<Faktura/>"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]  # no temp left over


def test_keyring_rotate_staged_then_activated(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: MonkeyPatch) -> None:
    path = tmp_path / "keyring.json"
    monkeypatch.setenv("KSEF_KEYRING_FILE", str(path))
    assert cli(capsys, "keyring", "init")[0] == 0
    code, out, _ = cli(capsys, "keyring", "rotate", "--stage", "--id", "2027q1")
    assert code == 0 and "--activate 2027q1" in out
    ring = Keyring.from_json(path.read_bytes())
    assert (ring.active, ring.key_ids) == ("k1", ["2027q1", "k1"])
    assert cli(capsys, "keyring", "rotate", "--activate", "2027q1")[0] == 0
    assert Keyring.from_json(path.read_bytes()).active == "2027q1"
    code, _, err = cli(capsys, "keyring", "rotate", "--activate", "nope")
    assert code == 1 and "not in the keyring" in err


def test_keyring_rotate_refuses_a_file_others_may_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keyring.json"
    path.write_bytes(new_keyring_json())
    path.chmod(0o644)
    code, _, err = cli(capsys, "keyring", "rotate", "--file", str(path))
    assert code == 1 and f"chmod 600 {path}" in err
    assert Keyring.from_json(path.read_bytes()).key_ids == ["k1"]


# --- rotation without a restart ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_source_rereads_a_rotated_file_without_restart(tmp_path: Path) -> None:
    from pipeline.runtime.keyring_file import KeyringSource, rotate_keyring

    path = tmp_path / "keyring.json"
    path.write_bytes(new_keyring_json("k1"))
    path.chmod(0o600)
    clock = Clock()
    source = KeyringSource(path, check_every_s=5.0, clock=clock)
    sealed_k1 = source.get().seal(b"one", b"inv-1")
    rotate_keyring(path)  # an operator rotates: k2 active, k1 kept
    assert source.get().active == "k1"  # not checked again yet
    clock.now += 5.0
    ring = source.get()
    assert (ring.active, ring.key_ids) == ("k2", ["k1", "k2"])
    assert ring.open(sealed_k1, b"inv-1") == b"one"
    # A record naming a key not known yet re-reads the file at once, without waiting.
    path.write_bytes(new_keyring_json("k3", path.read_bytes()))  # by another host
    assert source.has("k3")
    assert not source.has("k9")


def test_source_keeps_its_keys_when_the_file_turns_unusable(tmp_path: Path) -> None:
    from pipeline.runtime.keyring_file import KeyringSource, rotate_keyring

    path = tmp_path / "keyring.json"
    path.write_bytes(new_keyring_json("k1"))
    path.chmod(0o600)
    clock = Clock()
    source = KeyringSource(path, check_every_s=1.0, clock=clock)
    rotate_keyring(path)
    path.chmod(0o644)  # someone loosens it: refused, not taken
    clock.now += 1.0
    assert source.get().key_ids == ["k1"]
    assert source.error is not None and "chmod 600" in source.error
    path.chmod(0o600)
    clock.now += 1.0
    assert source.get().key_ids == ["k1", "k2"] and source.error is None


def test_source_from_the_environment_text_and_none(monkeypatch: MonkeyPatch) -> None:
    from pipeline.runtime.keyring_file import KeyringSource

    assert KeyringSource.from_env({"KSEF_KEYRING": new_keyring_json("kx").decode()}
                                  ).get().active == "kx"
    with pytest.raises(KeyringError, match="keyring init"):
        KeyringSource.from_env({})


# --- a missing key holds --------------------------------------------------------------


def event(topic: str, partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(topic=topic, partition=partition,
                                                   offset=offset))


def test_key_holds_alert_once_per_key_and_release_when_the_key_comes() -> None:
    from pipeline.runtime.key_hold import KeyHolds, missing_key_alert

    holds = KeyHolds()
    a, b, c = event("sealed", 0, 1), event("sealed", 0, 2), event("sealed", 1, 5)
    assert holds.hold("k9", a) is True
    assert holds.hold("k9", b) is False  # one alert per key id
    assert holds.hold("k8", c) is True
    assert holds.ready(["k1"]) == [] and len(holds) == 3
    assert holds.ready(["k1", "k9"]) == [("k9", [a, b])]
    assert holds.drop({("sealed", 1)}) == 1 and not holds
    alert = missing_key_alert("k9", "pack", dt.datetime(2026, 12, 4, tzinfo=dt.UTC),
                              invoice_id="inv-1", seller_nip="1234567890",
                              keyring_ids=["k1"])
    assert alert.kind == "keyring-key-missing" and alert.severity == "critical"
    assert "'k9'" in alert.message and alert.details["key_id"] == "k9"


def test_a_missing_key_is_its_own_error() -> None:
    ring = Keyring.from_json(new_keyring_json("k1"))
    other = Keyring.from_json(new_keyring_json("k9"))
    with pytest.raises(MissingKeyError) as caught:
        ring.open(other.seal(b"x", b"inv"), b"inv")
    assert caught.value.key_id == "k9"


# --- KOD II keys -------------------------------------------------------------------------

SELLER = "5260250274"


def offline_pair(directory: Path, encryption: serialization.KeySerializationEncryption
                 ) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "offline")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0x1234ABCD)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    (directory / f"{SELLER}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / f"{SELLER}.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8, encryption))
    key_path.chmod(0o600)


def test_encrypted_offline_key_opens_with_its_password_file(tmp_path: Path) -> None:
    from pipeline.stages.s1_validate_seal.sealing import load_offline_certificates

    offline_pair(tmp_path, serialization.BestAvailableEncryption(b"s3cret pass"))
    with pytest.raises(ValueError, match="is encrypted"):
        load_offline_certificates(str(tmp_path))
    password = tmp_path / f"{SELLER}.pass"
    password.write_bytes(b"s3cret pass\n")
    password.chmod(0o644)
    with pytest.raises(PermissionError, match=f"chmod 600 {password}"):
        load_offline_certificates(str(tmp_path))
    password.chmod(0o600)
    assert load_offline_certificates(str(tmp_path))[SELLER].serial_hex
    password.write_bytes(b"wrong\n")
    with pytest.raises(ValueError, match="does not open"):
        load_offline_certificates(str(tmp_path))


def test_encrypted_offline_key_opens_with_the_environment_password(tmp_path: Path) -> None:
    from pipeline.stages.s1_validate_seal.sealing import load_offline_certificates

    offline_pair(tmp_path, serialization.BestAvailableEncryption(b"from-env"))
    assert SELLER in load_offline_certificates(str(tmp_path), "from-env")


def test_offline_key_others_may_read_is_refused(tmp_path: Path) -> None:
    from pipeline.stages.s1_validate_seal.sealing import load_offline_certificates

    offline_pair(tmp_path, serialization.NoEncryption())
    key_path = tmp_path / f"{SELLER}.key"
    key_path.chmod(0o644)
    with pytest.raises(PermissionError, match=f"chmod 600 {key_path}"):
        load_offline_certificates(str(tmp_path))
