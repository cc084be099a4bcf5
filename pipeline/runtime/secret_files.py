"""Reading files that hold secrets, refusing those other users could read.

A private key, PKCS#12 bundle, password or token readable by the group or others is a
leak waiting to happen (backups, shared hosts), so it is refused with the file's name and
the fix, before a byte of it is read. Nothing read here ever reaches a message.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.ksef.errors import KsefCredentialError
from pipeline.runtime.private_files import OTHERS_MAY_ACCESS, access_problem

__all__ = ["OTHERS_MAY_ACCESS", "Stamp", "read_file", "read_password", "read_token", "stamp"]

Stamp = tuple[int, int, int, int] | None  # (mtime_ns, size, inode, mode); None: missing


def stamp(path: Path) -> Stamp:
    """What changes when `path` is rewritten, replaced or chmod-ed (None when missing)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_mode)


def read_file(nip: str, path: Path, what: str, *, secret: bool) -> bytes:
    """The bytes of `path`; a `secret` one must be accessible by its owner only."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KsefCredentialError(nip, "missing-file", f"{what} file does not exist",
                                  path=str(path)) from None
    except OSError as exc:
        raise KsefCredentialError(nip, "unreadable", f"{what} file: {exc.strerror}",
                                  path=str(path)) from None
    problem = access_problem(path, info.st_mode, what) if secret else None
    if problem is not None:
        raise KsefCredentialError(nip, "permissions", problem, path=str(path))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KsefCredentialError(nip, "unreadable", f"{what} file: {exc.strerror}",
                                  path=str(path)) from None


def read_password(nip: str, path: Path) -> bytes:
    """A password file's content without the trailing newline editors add."""
    return read_file(nip, path, "password", secret=True).rstrip(b"\r\n")


def read_token(nip: str, path: Path) -> str:
    """A KSeF token file's content (one token, surrounding whitespace ignored)."""
    return read_file(nip, path, "KSeF token", secret=True).decode("utf-8").strip()
