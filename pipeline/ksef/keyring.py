"""Encryption of invoices at rest (AES-256-GCM) under a rotatable keyring.

Every sealed record names the key id it was sealed with; rotation adds a key and makes
it active while the old ones stay to open older records. The invoice id is bound as
associated data, so a ciphertext moved onto another invoice's record fails to open.

Keyring JSON: `{"active": "k2", "keys": {"k1": "<base64 32 bytes>", "k2": "..."}}`.
Pure: `Keyring.from_json` takes the text; finding it (KSEF_KEYRING_FILE, KSEF_KEYRING, a
default file) and generating keys is `pipeline.runtime.keyring_file`'s job.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

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
