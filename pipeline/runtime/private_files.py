"""Files only their owner may touch: the one check every secret file goes through.

The keyring, KSeF tokens, private keys, PKCS#12 bundles, their password files and the
offline (KOD II) certificate keys are refused when the group or others may read, write
or enter them (mode & 0o077), before a byte is read, with the file's name and the fix
(`chmod 600 FILE`). A world-writable keyring is as bad as a world-readable one: whoever
can write it chooses the key invoices are sealed under. Nothing read here reaches a
message. Writing goes through `write_private` (0600 from the first byte, atomic rename).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

OTHERS_MAY_ACCESS = stat.S_IRWXG | stat.S_IRWXO


class PrivateFileError(PermissionError):
    """A secret file is missing, unreadable, or accessible by other users."""


def access_problem(path: Path | str, mode: int, what: str) -> str | None:
    """The refusal message when `mode` lets the group or others at `path` (else None)."""
    if not mode & OTHERS_MAY_ACCESS:
        return None
    return (f"{what} file {path} is accessible by group or others (mode "
            f"{stat.S_IMODE(mode):04o}); refused: run `chmod 600 {path}`")


def check_private(path: Path, what: str) -> os.stat_result:
    """`path`'s stat, or PrivateFileError when it is missing, not a file, or not private."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise PrivateFileError(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise PrivateFileError(f"{what} file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise PrivateFileError(f"{what} file {path} is not a regular file")
    problem = access_problem(path, info.st_mode, what)
    if problem is not None:
        raise PrivateFileError(problem)
    return info


def read_private(path: Path, what: str) -> bytes:
    """The bytes of a secret file that only its owner may access."""
    check_private(path, what)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PrivateFileError(f"{what} file {path}: {exc.strerror or exc}") from None


def write_private(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write `data` to `path` as 0600: a temporary file beside it, fsync, rename (readers
    see the old or the new content, never half of it). Without `overwrite` an existing
    file is refused (FileExistsError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite it")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if `path` appeared meanwhile
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

