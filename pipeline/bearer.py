"""Bearer tokens for the endpoints that change state: the worker's operator endpoints
(KSEF_OPERATOR_TOKEN_FILE) and the emulator's admin endpoints
(KSEF_EMULATOR_ADMIN_TOKEN_FILE / `ksef-pipeline emulator --admin-token-file`).

A token file holds one token per line, `name:token` or a bare `token` (blank lines and
`#` comments are skipped); the name says who acted in the audit trail (a bare token is
named by its fingerprint). The file must be private (mode 0600 or stricter): a file the
group or others may read or write is refused with an error naming `chmod 600`.
Tokens are compared with `hmac.compare_digest`; no cookies are read, and requests that
change state must be `Content-Type: application/json`, so a cross-site form or
`text/plain` POST from a browser cannot pass.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.runtime import redaction
from pipeline.runtime.private_files import access_problem

MIN_TOKEN_CHARS = 16
JSON = "application/json"


class TokenFileError(Exception):
    """The token file is missing, unreadable, not private or holds no usable token."""


@dataclass(frozen=True)
class TokenEntry:
    name: str
    token: str

    def __repr__(self) -> str:  # never print the secret
        return f"TokenEntry(name={self.name!r}, fingerprint={fingerprint(self.token)!r})"


@dataclass(frozen=True)
class Caller:
    """Who presented an accepted token (for audit records)."""

    name: str
    fingerprint: str


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="ksef-pipeline"'} if self.status == 401 else {}


def fingerprint(token: str) -> str:
    """`sha256:` + the first 16 hex digits of the token's SHA-256 (safe to log)."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def check_private(path: Path) -> None:
    """Raise TokenFileError unless `path` is a regular file only its owner may access."""
    try:
        info = path.stat()
    except OSError as exc:
        raise TokenFileError(f"token file {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise TokenFileError(f"token file {path} is not a regular file")
    problem = access_problem(path, info.st_mode, "token")
    if problem is not None:
        raise TokenFileError(problem)


def read_tokens(path: Path) -> tuple[TokenEntry, ...]:
    """The tokens of a private token file (see the module doc)."""
    check_private(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"token file {path}: {exc}") from exc
    entries: list[TokenEntry] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.rpartition(":")
        if not sep:
            name, token = "", line
        name, token = name.strip(), token.strip()
        if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
            raise TokenFileError(f"token file {path}, line {number}: a token must be at least "
                                 f"{MIN_TOKEN_CHARS} characters without spaces")
        redaction.register(token)
        entries.append(TokenEntry(name or f"token {fingerprint(token)}", token))
    if not entries:
        raise TokenFileError(f"token file {path} holds no token")
    return tuple(entries)


def write_token_file(path: Path, name: str = "") -> str:
    """A new random token written to `path` (mode 0600, replacing any old file); returns it."""
    token = secrets.token_urlsafe(32)
    redaction.register(token)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"{name}:{token}\n" if name else f"{token}\n")
    return token


def presented(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (None when absent)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def match(entries: Sequence[TokenEntry], token: str | None) -> Caller | None:
    """The caller whose token equals `token` (constant-time comparisons, all entries)."""
    if token is None:
        return None
    found: TokenEntry | None = None
    given = token.encode("utf-8")
    for entry in entries:
        if hmac.compare_digest(entry.token.encode("utf-8"), given):
            found = entry
    return None if found is None else Caller(found.name, fingerprint(found.token))


def is_json(content_type: str | None) -> bool:
    """`application/json` (parameters such as charset allowed), nothing else."""
    return (content_type or "").split(";", 1)[0].strip().lower() == JSON


def authorize(entries: Sequence[TokenEntry], headers: Mapping[str, str]) -> Caller | Refusal:
    """401 without a token or with one not in `entries`, else the caller."""
    token = presented(headers.get("Authorization"))
    if token is None:
        return Refusal(401, "this endpoint needs an `Authorization: Bearer <token>` header")
    caller = match(entries, token)
    if caller is None:
        return Refusal(401, "the bearer token is not accepted")
    return caller


def require_json(content_type: str | None) -> Refusal | None:
    if is_json(content_type):
        return None
    return Refusal(415, f"the request must be `Content-Type: {JSON}` "
                        f"(got {content_type or 'none'!r})")
