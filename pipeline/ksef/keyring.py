"""Encryption of invoices at rest (AES-256-GCM) under a rotatable keyring.

Every sealed record names the key id it was sealed with; rotation adds a key and makes
it active while the old ones stay to open older records. The invoice id is bound as
associated data, so a ciphertext moved onto another invoice's record fails to open.

Keyring JSON: `{"active": "k2", "keys": {"k1": "<base64 32 bytes>", "k2": "..."}}`.
Pure: `Keyring.from_json` takes the text; finding it (KSEF_KEYRING_FILE, KSEF_KEYRING, a
default file) and generating keys is `pipeline.keyring_file`'s job.
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
            raise KeyringError(f"key {sealed.key_id!r} is not in the keyring (rotated out?)")
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext, associated)
        except InvalidTag as exc:
            raise KeyringError("sealed invoice does not open: wrong key or tampered") from exc

    def open_invoice(self, key_id: str, nonce_b64: str, ciphertext_b64: str,
                     invoice_id: str) -> bytes:
        """Open a sealed invoice record's fields (invoice id is the associated data)."""
        sealed = Sealed(key_id, base64.b64decode(nonce_b64), base64.b64decode(ciphertext_b64))
        return self.open(sealed, associated=invoice_id.encode())

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
