"""Where the at-rest keyring comes from, and how it is made, rotated and re-read.

The keyring itself (`pipeline.ksef.keyring.Keyring`: seal and open under AES-256-GCM) is
pure domain and reads nothing; finding its JSON, generating keys and following the file
is this module's job, for the stages, the commands, the demo and the tests.

Keyring JSON: `{"active": "k2", "keys": {"k1": "<base64 32 bytes>", "k2": "..."}}`,
from the file named by KSEF_KEYRING_FILE or the text of KSEF_KEYRING. Nothing is ever
generated silently: a worker without either refuses to start, naming
`ksef-pipeline keyring init`; two hosts generating their own `k1` would seal invoices
the other cannot open. The file must be private to its owner (`chmod 600`).

Rotation without restarts (`KeyringSource`): every process re-reads the file when it
changed (checked at most every KSEF_KEYRING_CHECK_S seconds, and at once when a record
names a key it lacks). Readers must learn a key before sealers use it, so rotate in two
steps: `keyring rotate --stage` (the new key is added, not active), wait for the readers
to reload (KSEF_KEYRING_CHECK_S; a reader that meets the new key id earlier re-reads the
file by itself), then `keyring rotate --activate ID`. Old keys stay for older records.
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import orjson

from pipeline.ksef.keyring import Keyring, KeyringError
from pipeline.runtime import logs, redaction
from pipeline.runtime.private_files import PrivateFileError, read_private, write_private
from pipeline.runtime.secret_files import Stamp, stamp
from pipeline.runtime.settings import (
    DEFAULT_KEYRING_CHECK_S,
    KEYRING_CHECK_S,
    KEYRING_FILE,
    KEYRING_TEXT,
    KeyringSettings,
)

log = logs.get(__name__)

ENV_FILE, ENV_TEXT, ENV_CHECK_S = KEYRING_FILE, KEYRING_TEXT, KEYRING_CHECK_S
DEFAULT_CHECK_S = DEFAULT_KEYRING_CHECK_S
INIT_HINT = ("create one with `ksef-pipeline keyring init --file /secure/path/keyring.json` "
             f"and set {ENV_FILE} to it (or put its JSON in {ENV_TEXT}); every worker of "
             "the pipeline must use the same keyring")


class NoKeyringError(KeyringError):
    """Neither KSEF_KEYRING_FILE nor KSEF_KEYRING is set: nothing is generated."""

    def __init__(self) -> None:
        super().__init__(f"no keyring configured: {ENV_FILE} and {ENV_TEXT} are unset; "
                         + INIT_HINT)


def new_keyring_json(key_id: str = "k1", previous: bytes | None = None, *,
                     activate: bool = True) -> bytes:
    """A keyring document with a fresh key `key_id` (keeping the keys of `previous`),
    made active unless `activate` is False (staged for readers first)."""
    doc: dict[str, object] = {"keys": {}}
    if previous is not None:
        doc = orjson.loads(previous)
        Keyring.from_json(previous)  # a malformed keyring is not extended
    keys = dict(doc["keys"])  # type: ignore[call-overload]
    if key_id in keys:
        raise KeyringError(f"key id {key_id!r} already exists")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", key_id):
        raise KeyringError(f"key id {key_id!r}: use letters, digits, '.', '_' or '-'")
    keys[key_id] = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    active = key_id if activate or previous is None else doc["active"]
    return orjson.dumps({"active": active, "keys": keys}, option=orjson.OPT_INDENT_2)


def activate_key_json(previous: bytes, key_id: str) -> bytes:
    """The keyring `previous` with `key_id` (already in it) made active."""
    doc = orjson.loads(previous)
    Keyring.from_json(previous)
    if key_id not in doc["keys"]:
        raise KeyringError(f"key id {key_id!r} is not in the keyring; stage it first "
                           "(`keyring rotate --stage`)")
    return orjson.dumps({"active": key_id, "keys": doc["keys"]}, option=orjson.OPT_INDENT_2)


def next_key_id(previous: bytes) -> str:
    """`k<n+1>` after the highest `k<n>` in the keyring."""
    ids = orjson.loads(previous)["keys"]
    numbers = [int(k[1:]) for k in ids if re.fullmatch(r"k\d+", k)]
    return f"k{max(numbers, default=0) + 1}"


def read_keyring_file(path: Path) -> Keyring:
    """The keyring in `path`, refused unless only its owner may access it."""
    try:
        data = read_private(path, "keyring")
    except PrivateFileError as exc:
        raise KeyringError(str(exc)) from None
    try:
        return _keyring(data)
    except KeyringError as exc:
        raise KeyringError(f"keyring file {path}: {exc}") from None


def _keyring(data: str | bytes) -> Keyring:
    """The keyring of `data`, its keys registered so that no log line carries them."""
    redaction.register_keyring_json(data)
    return Keyring.from_json(data)


def init_keyring(path: Path, key_id: str = "k1") -> None:
    """A new keyring file (0600) with one active key; an existing file is never replaced."""
    try:
        write_private(path, new_keyring_json(key_id), overwrite=False)
    except FileExistsError:
        raise KeyringError(f"{path} exists; refusing to overwrite a keyring (its keys open "
                           "the invoices sealed under them): use `keyring rotate`") from None


def rotate_keyring(path: Path, key_id: str | None = None, *, stage: bool = False) -> str:
    """Add a fresh key to the keyring file (active unless `stage`); its id."""
    previous = read_private_keyring_bytes(path)
    key_id = key_id or next_key_id(previous)
    write_private(path, new_keyring_json(key_id, previous, activate=not stage), overwrite=True)
    return key_id


def activate_key(path: Path, key_id: str) -> None:
    """Make a staged key active in the keyring file."""
    previous = read_private_keyring_bytes(path)
    write_private(path, activate_key_json(previous, key_id), overwrite=True)


def read_private_keyring_bytes(path: Path) -> bytes:
    read_keyring_file(path)  # private and well-formed, or KeyringError
    return path.read_bytes()


def load_keyring(environ: Mapping[str, str] | None = None) -> Keyring:
    """From KSEF_KEYRING_FILE or KSEF_KEYRING; NoKeyringError when neither is set."""
    return KeyringSource.from_env(environ).get()


class KeyringSource:
    """The keyring of this process, re-read when its file changes.

    `get()` stats the file at most every `check_every_s` seconds; `refresh()` does at
    once (a record naming an unknown key id). A file that became unusable (malformed,
    made accessible to others) is not taken: the keys already loaded stay in use, the
    problem is logged and kept in `error`.
    """

    def __init__(self, path: Path | None = None, text: str | None = None, *,
                 check_every_s: float = DEFAULT_CHECK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if path is None and not text:
            raise NoKeyringError()
        self.path = path
        self.check_every_s = check_every_s
        self.error: str | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: Stamp = None
        if path is None:
            assert text is not None
            self._keyring = _keyring(text)
        else:
            self._stamp = stamp(path)
            self._keyring = read_keyring_file(path)
        self._checked = clock()

    def __repr__(self) -> str:
        return f"KeyringSource(path={self.path}, keyring={self._keyring!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyringSource:
        """From `KeyringSettings` of the process environment (or of `environ`)."""
        return cls.from_settings(KeyringSettings.from_env(environ))

    @classmethod
    def from_settings(cls, settings: KeyringSettings) -> KeyringSource:
        if settings.file:
            return cls(Path(settings.file), check_every_s=settings.check_s)
        return cls(text=settings.text, check_every_s=settings.check_s)

    def get(self) -> Keyring:
        """The current keyring (re-read first when the check is due and the file changed)."""
        if self.path is not None and self._clock() - self._checked >= self.check_every_s:
            self.refresh()
        return self._keyring

    def has(self, key_id: str) -> bool:
        """Whether the keyring holds `key_id`, re-reading the file at once if it does not."""
        if key_id not in self._keyring.key_ids:
            self.refresh()
        return key_id in self._keyring.key_ids

    def refresh(self) -> bool:
        """Re-read the file now if it changed; True when a new keyring was taken."""
        if self.path is None:
            return False
        with self._lock:
            self._checked = self._clock()
            now = stamp(self.path)
            if now == self._stamp:
                return False
            self._stamp = now
            try:
                ring = read_keyring_file(self.path)
            except KeyringError as exc:
                self.error = str(exc)
                log.error("keyring file changed but cannot be used; the keys loaded before "
                          "stay in use", path=str(self.path), error=self.error)
                return False
            self.error = None
            before = self._keyring
            self._keyring = ring
        log.info("keyring re-read", path=str(self.path), active=ring.active,
                 keys=ring.key_ids, added=sorted(set(ring.key_ids) - set(before.key_ids)),
                 removed=sorted(set(before.key_ids) - set(ring.key_ids)))
        return True


@functools.cache
def keyring_source() -> KeyringSource:
    """The process's keyring source from the environment (NoKeyringError when none)."""
    return KeyringSource.from_env()
