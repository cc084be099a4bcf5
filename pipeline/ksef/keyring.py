"""Encryption of invoices at rest (AES-256-GCM) under a rotatable keyring.

Every sealed record names the key id it was sealed with; rotation adds a key and makes
it active while the old ones stay to open older records. The invoice id is bound as
associated data, so a ciphertext moved onto another invoice's record fails to open.

Keyring JSON: `{"active": "k2", "keys": {"k1": "<base64 32 bytes>", "k2": "..."}}`,
from the file named by KSEF_KEYRING_FILE or the text of KSEF_KEYRING.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class KeyringError(ValueError):
    """The keyring is unusable or a sealed record cannot be opened (wrong key, tampered)."""


class MissingKeyError(KeyringError):
    """A record names a key this keyring does not hold (not yet rotated in here, or
    rotated out): the record is fine, the keyring is not; hold it, do not reject it."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"key {key_id!r} is not in the keyring (not rotated in yet, or "
                         "rotated out?)")
        self.key_id = key_id


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes


class Keyring:
    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        if active not in keys:
            raise KeyringError(f"active key {active!r} is not in the keyring")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise KeyringError(f"key {key_id!r} has {len(key)} bytes, AES-256 needs 32")
        self._aead = {k: AESGCM(v) for k, v in keys.items()}
        self.active = active

    def __repr__(self) -> str:  # key material never reaches logs
        return f"Keyring(active={self.active!r}, keys={sorted(self._aead)})"

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._aead)

    def seal(self, plaintext: bytes, associated: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(self.active, nonce, self._aead[self.active].encrypt(nonce, plaintext,
                                                                        associated))

    def open(self, sealed: Sealed, associated: bytes) -> bytes:
        aead = self._aead.get(sealed.key_id)
        if aead is None:
            raise MissingKeyError(sealed.key_id)
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext, associated)
        except InvalidTag as exc:
            raise KeyringError("sealed invoice does not open: wrong key or tampered") from exc

    def encrypt(self, key_id: str, nonce: bytes, plaintext: bytes, associated: bytes) -> bytes:
        """AES-256-GCM under `key_id` (the `topics.sealed.Cipher` a sealed record needs)."""
        aead = self._aead.get(key_id)
        if aead is None:
            raise MissingKeyError(key_id)
        return aead.encrypt(nonce, plaintext, associated)

    def decrypt(self, key_id: str, nonce: bytes, ciphertext: bytes, associated: bytes) -> bytes:
        return self.open(Sealed(key_id, nonce, ciphertext), associated)

    @staticmethod
    def nonce() -> bytes:
        return os.urandom(NONCE_BYTES)

    @classmethod
    def from_json(cls, text: str | bytes) -> Keyring:
        try:
            doc = orjson.loads(text)
            keys = {str(k): base64.b64decode(v, validate=True) for k, v in doc["keys"].items()}
            return cls(keys, str(doc["active"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, KeyringError):
                raise
            raise KeyringError(f"keyring JSON is malformed: {type(exc).__name__}") from None


def new_keyring_json(key_id: str = "k1", previous: bytes | None = None) -> bytes:
    """A keyring document with a fresh active key (keeping the keys of `previous`)."""
    doc: dict[str, object] = {"keys": {}}
    if previous is not None:
        doc = orjson.loads(previous)
    keys = dict(doc["keys"])  # type: ignore[call-overload]
    if key_id in keys:
        raise KeyringError(f"key id {key_id!r} already exists")
    keys[key_id] = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    return orjson.dumps({"active": key_id, "keys": keys}, option=orjson.OPT_INDENT_2)


def load_keyring(default_file: Path | None = None) -> Keyring:
    """From KSEF_KEYRING_FILE, KSEF_KEYRING, or `default_file` (created 0600 if missing).

    The default file exists for the embedded demo and tests; production sets one of the
    variables so keys live in a secret store, not beside the worker's state.
    """
    path = os.environ.get("KSEF_KEYRING_FILE")
    if path:
        return Keyring.from_json(Path(path).read_bytes())
    text = os.environ.get("KSEF_KEYRING")
    if text:
        return Keyring.from_json(text)
    if default_file is None:
        raise KeyringError("no keyring: set KSEF_KEYRING_FILE or KSEF_KEYRING")
    if not default_file.exists():
        default_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(default_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(new_keyring_json())
    return Keyring.from_json(default_file.read_bytes())
