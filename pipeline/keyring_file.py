"""Where the at-rest keyring comes from: the environment, a file, or a new file made here.

The keyring itself (`pipeline.ksef.keyring.Keyring`: seal and open under AES-256-GCM) is
pure domain and reads nothing; finding its JSON and generating keys is this module's job,
for the stages, the commands, the demo and the tests.

Keyring JSON: `{"active": "k2", "keys": {"k1": "<base64 32 bytes>", "k2": "..."}}`,
from the file named by KSEF_KEYRING_FILE or the text of KSEF_KEYRING.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import orjson

from pipeline import redaction
from pipeline.ksef.keyring import Keyring, KeyringError


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
        return _keyring(Path(path).read_bytes())
    text = os.environ.get("KSEF_KEYRING")
    if text:
        return _keyring(text)
    if default_file is None:
        raise KeyringError("no keyring: set KSEF_KEYRING_FILE or KSEF_KEYRING")
    if not default_file.exists():
        default_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(default_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(new_keyring_json())
    return _keyring(default_file.read_bytes())


def _keyring(data: str | bytes) -> Keyring:
    """The keyring of `data`, its keys registered so that no log line carries them."""
    redaction.register_keyring_json(data)
    return Keyring.from_json(data)
