"""Secrets kept out of logs: a registry of configured secret values and the scrubbing
that `pipeline.runtime.logs` applies to every event (structlog and stdlib records alike).

Two nets, because neither alone is enough:
- by name: the value of a field whose name says secret (`password`, `token`,
  `authorization`, `private_key`, ...) is replaced whatever it holds;
- by value: a configured secret (KSeF tokens, the SASL password, operator and emulator
  admin tokens, keyring keys, key passwords) is replaced wherever it appears in any
  string, and so is an `Authorization: Bearer <token>` credential.

The loaders of those secrets call `register` (settings, credential store, token files,
keyring); nothing here reads files or the environment. Values shorter than
`MIN_SECRET_CHARS` are not registered: scrubbing them would mangle ordinary text (such a
secret is too weak anyway).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 6

# A field name that says its value is a secret: a word of the name (split on `_`, `-`,
# `.` or a case change) is one of these...
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "secrets", "token", "tokens",
    "authorization", "auth_header", "cookie", "apikey", "credential", "credentials",
    "keyring", "privatekey", "signingkey",
})
# ... or the whole name is one of these (compact forms of two words).
_SECRET_NAMES = frozenset({
    "api_key", "private_key", "secret_key", "signing_key", "sasl_password",
    "sasl_plain_password", "ssl_password", "ssl_key_password", "key_password",
    "key_material", "keys", "aes_key", "access_token", "refresh_token", "bearer",
    "x_api_key", "proxy_authorization",
})
# ... unless its last word says it only names or describes one (a path, a fingerprint).
_SAFE_SUFFIXES = frozenset({
    "file", "path", "dir", "fingerprint", "id", "ids", "kind", "type", "source",
    "method", "count", "expires", "until", "at", "s", "env", "reference", "status",
    "statuses", "problem", "name", "names",
})

# A value that is only a fingerprint of a secret (`pipeline.bearer.fingerprint`) is kept
# even under a secret name: the audit log names the operator token that way.
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{8,64}")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/=:]{6,}")
_WORD_SPLIT = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])")

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_pattern: re.Pattern[str] | None = None


def register(*values: str | bytes | None) -> None:
    """Remember secret values: from now on none of them appears in a log line."""
    global _secrets, _pattern
    fresh = set()
    for value in values:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                continue
        if value is None:
            continue
        value = value.strip()
        if len(value) >= MIN_SECRET_CHARS:
            fresh.add(value)
    if not fresh - _secrets:
        return
    with _lock:
        _secrets = _secrets | fresh
        # longest first, so a secret containing another is replaced whole
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_all(values: Iterable[str | bytes | None]) -> None:
    register(*values)


def register_keyring_json(data: str | bytes) -> None:
    """The keys (base64 text) of a keyring document; a malformed one registers nothing
    (the keyring's own parser says what is wrong)."""
    try:
        keys = json.loads(data).get("keys", {})
        register(*(v for v in keys.values() if isinstance(v, str)))
    except (ValueError, AttributeError, TypeError):
        return


def registered() -> frozenset[str]:
    return _secrets


def forget_all() -> None:
    """Empty the registry (tests)."""
    global _secrets, _pattern
    with _lock:
        _secrets, _pattern = frozenset(), None


def is_secret_name(name: object) -> bool:
    """Whether a field called `name` holds a secret (see the module doc)."""
    if not isinstance(name, str) or not name:
        return False
    lowered = name.strip().lower().replace("-", "_")
    if lowered in _SECRET_NAMES:
        return True
    words = [w.lower() for w in _WORD_SPLIT.split(name.strip()) if w]
    if not words or words[-1] in _SAFE_SUFFIXES:
        return False
    return any(w in _SECRET_WORDS for w in words)


def scrub_text(text: str) -> str:
    """`text` with every registered secret and bearer credential replaced."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return text


def scrub(value: Any, _depth: int = 0) -> Any:
    """A copy of `value` with secrets replaced: by field name in mappings (nested too),
    by value in every string (in lists, tuples and sets too)."""
    if isinstance(value, str):
        return scrub_text(value)
    if _depth > 8:
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if is_secret_name(k) and v is not None and not _is_fingerprint(v)
                    else scrub(v, _depth + 1)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [scrub(v, _depth + 1) for v in value]
        return items if isinstance(value, list) else type(value)(items)
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        cleaned = scrub_text(text)
        return value if cleaned == text else cleaned
    return value


def _is_fingerprint(value: Any) -> bool:
    return isinstance(value, str) and _FINGERPRINT.fullmatch(value) is not None
