"""The credentials file (KSEF_CREDENTIALS_FILE): one JSON object, an entry per context.

```json
{"contexts": {
  "5265877635": {"certificate": "certs/5265877635.crt", "private_key": "certs/5265877635.key",
                 "password_file": "certs/5265877635.pass"},
  "7010002137": {"pkcs12": "certs/7010002137.p12", "password_file": "certs/7010002137.pass",
                 "subject_identifier_type": "certificateFingerprint"},
  "1234563218": {"token_file": "tokens/1234563218.token"},
  "9876543210": {"token": "<KSeF token>"}
}}
```

Each entry is exactly one of: `token`, `token_file`, `certificate` + `private_key` (PEM
or DER each, the key optionally encrypted), or `pkcs12`. `password_file` decrypts the
key or the PKCS#12; `subject_identifier_type` is `certificateSubject` (default) or
`certificateFingerprint`. Relative paths are relative to the credentials file's
directory. Parsing is pure: nothing is read here but the JSON given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from pipeline.ksef.credentials import SUBJECT_IDENTIFIER_TYPES
from pipeline.ksef.errors import KsefCredentialError

NIP = re.compile(r"\d{10}")
Method = Literal["token", "token_file", "certificate", "pkcs12"]
_KEYS = {"token", "token_file", "certificate", "private_key", "pkcs12", "password_file",
         "subject_identifier_type"}
FILE_CONTEXT = "*"  # the nip of a problem with the whole credentials file


@dataclass(frozen=True)
class ContextEntry:
    """One context's entry, paths resolved; the inline token never in a repr."""

    nip: str
    method: Method
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    certificate: Path | None = None
    private_key: Path | None = None
    pkcs12: Path | None = None
    password_file: Path | None = None
    subject_identifier_type: str = "certificateSubject"

    def files(self) -> tuple[Path, ...]:
        """Every file this entry names (their changes trigger a reload)."""
        return tuple(p for p in (self.token_file, self.certificate, self.private_key,
                                 self.pkcs12, self.password_file) if p is not None)


def _path(base: Path, value: Any, nip: str, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise KsefCredentialError(nip, "invalid", f"{key} must be a file path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def parse_entry(nip: str, raw: Any, base: Path) -> ContextEntry:
    """One context's entry; raises KsefCredentialError naming what is wrong."""
    if not NIP.fullmatch(nip):
        raise KsefCredentialError(nip, "invalid", "a context key must be a 10-digit NIP")
    if not isinstance(raw, dict):
        raise KsefCredentialError(nip, "invalid", "the entry must be a JSON object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise KsefCredentialError(nip, "invalid", f"unknown keys {unknown}; allowed: "
                                  f"{sorted(_KEYS)}")
    kinds = [k for k in ("token", "token_file", "certificate", "pkcs12") if k in raw]
    if len(kinds) != 1:
        raise KsefCredentialError(nip, "invalid", "an entry has exactly one of token, "
                                  f"token_file, certificate (+ private_key) or pkcs12 "
                                  f"(got {kinds or 'none'})")
    method: Method = kinds[0]  # type: ignore[assignment]
    subject_type = raw.get("subject_identifier_type", "certificateSubject")
    if subject_type not in SUBJECT_IDENTIFIER_TYPES:
        raise KsefCredentialError(nip, "invalid", "subject_identifier_type must be one of "
                                  f"{', '.join(SUBJECT_IDENTIFIER_TYPES)}")
    if method in ("token", "token_file") and (
            set(raw) & {"private_key", "password_file", "subject_identifier_type"}):
        raise KsefCredentialError(nip, "invalid", "a token entry takes no private_key, "
                                  "password_file or subject_identifier_type")
    if method == "token":
        if not isinstance(raw["token"], str) or not raw["token"].strip():
            raise KsefCredentialError(nip, "invalid", "token must be a non-empty string")
        return ContextEntry(nip, method, token=raw["token"].strip())
    if method == "certificate" and "private_key" not in raw:
        raise KsefCredentialError(nip, "invalid", "certificate needs private_key")
    if method == "pkcs12" and "private_key" in raw:
        raise KsefCredentialError(nip, "invalid", "pkcs12 holds the key: drop private_key")

    def opt(key: str) -> Path | None:
        return _path(base, raw[key], nip, key) if key in raw else None

    return ContextEntry(nip, method, token_file=opt("token_file"),
                        certificate=opt("certificate"), private_key=opt("private_key"),
                        pkcs12=opt("pkcs12"), password_file=opt("password_file"),
                        subject_identifier_type=subject_type)


def parse_credentials_file(
    data: bytes, base: Path, path: str
) -> dict[str, ContextEntry | KsefCredentialError]:
    """Every context of the file; a bad entry is that context's problem only.

    Raises KsefCredentialError (nip "*") when the file as a whole is unusable.
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise KsefCredentialError(FILE_CONTEXT, "unreadable",
                                  f"not JSON (line {exc.lineno}, column {exc.colno})",
                                  path=path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("contexts"), dict):
        raise KsefCredentialError(FILE_CONTEXT, "invalid",
                                  'expected {"contexts": {"<NIP>": {...}, ...}}', path=path)
    entries: dict[str, ContextEntry | KsefCredentialError] = {}
    for nip, raw in doc["contexts"].items():
        try:
            entries[nip] = parse_entry(nip, raw, base)
        except KsefCredentialError as exc:
            entries[nip] = KsefCredentialError(nip, exc.problem, exc.detail, path=path)
    return entries
