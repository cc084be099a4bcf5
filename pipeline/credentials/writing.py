"""Writing certificates, keys and the credentials file safely (for `credentials enroll`).

Workers re-read the credentials file when it changes, so it is replaced atomically (a
temporary file in the same directory, then `os.replace`): a reader sees the old or the
new file, never half of one. Secrets are created 0600 from the first byte, never
chmod-ed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

import orjson


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data`, the file having `mode` before it gets a byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_secret(path: Path, data: bytes) -> None:
    """A private key: 0600 always."""
    write_atomic(path, data, 0o600)


def _relative(path: Path, base: Path) -> str:
    """`path` relative to the credentials file's directory when inside it (portable)."""
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def set_certificate_entry(credentials_file: Path, nip: str, certificate: Path,
                          private_key: Path) -> dict[str, object]:
    """Point `nip`'s entry at `certificate` + `private_key`, keeping every other entry
    and the file's mode (0600 when new); the previous entry of `nip` is returned."""
    if credentials_file.exists():
        document = orjson.loads(credentials_file.read_bytes())
        mode = stat.S_IMODE(credentials_file.stat().st_mode)
    else:
        document, mode = {"contexts": {}}, 0o600
    if not isinstance(document, dict) or not isinstance(document.get("contexts"), dict):
        raise ValueError(f'{credentials_file}: expected {{"contexts": {{...}}}}')
    contexts: dict[str, object] = document["contexts"]
    previous = contexts.get(nip)
    base = credentials_file.parent
    contexts[nip] = {"certificate": _relative(certificate, base),
                     "private_key": _relative(private_key, base)}
    write_atomic(credentials_file,
                 orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n", mode)
    return previous if isinstance(previous, dict) else {}
