"""Encryption at rest: rotation keeps old records readable; tampering is detected."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest
from pytest import MonkeyPatch

from pipeline.ksef.keyring import Keyring, KeyringError
from pipeline.runtime.keyring_file import load_keyring, new_keyring_json


def test_rotation_keeps_old_records_readable(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    first = new_keyring_json("k1")
    old = Keyring.from_json(first).seal(b"<Faktura/>", b"inv-1")
    rotated = new_keyring_json("k2", previous=first)
    ring = Keyring.from_json(rotated)
    assert ring.active == "k2" and ring.key_ids == ["k1", "k2"]
    assert ring.open(old, b"inv-1") == b"<Faktura/>"
    assert ring.seal(b"x", b"inv-2").key_id == "k2"
    path = tmp_path / "ring.json"
    path.write_bytes(rotated)
    path.chmod(0o600)
    monkeypatch.setenv("KSEF_KEYRING_FILE", str(path))
    assert load_keyring().active == "k2"


def test_wrong_invoice_or_tampering_fails_loudly() -> None:
    ring = Keyring.from_json(new_keyring_json())
    sealed = ring.seal(b"secret invoice", b"inv-1")
    with pytest.raises(KeyringError):
        ring.open(sealed, b"inv-2")
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(KeyringError):
        ring.open(type(sealed)(sealed.key_id, sealed.nonce, flipped), b"inv-1")


def test_keys_never_show_in_repr_and_bad_keyrings_are_explained() -> None:
    raw = new_keyring_json()
    key = orjson.loads(raw)["keys"]["k1"]
    assert key not in repr(Keyring.from_json(raw))
    with pytest.raises(KeyringError, match="32"):
        Keyring.from_json(orjson.dumps({"active": "k", "keys": {
            "k": base64.b64encode(b"short").decode()}}))
    with pytest.raises(KeyringError, match="malformed"):
        Keyring.from_json(b"{not json")


def test_no_keyring_is_ever_generated(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    monkeypatch.delenv("KSEF_KEYRING_FILE", raising=False)
    monkeypatch.delenv("KSEF_KEYRING", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyringError, match="ksef-pipeline keyring init"):
        load_keyring()
    assert list(tmp_path.iterdir()) == []
