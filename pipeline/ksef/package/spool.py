"""The spool: where a batch's files live on this machine, and how they are kept private.

Files appear whole or not at all: a worker killed mid-write leaves only a `.tmp` file,
which nothing mistakes for a finished package or part; the rename happens once the data
is complete (and fsynced when asked).

Nothing in the spool is plaintext. The package is written through AES-256-CTR under a
`SpoolKey` drawn per batch that lives only in the worker's memory (CTR keeps the file the
size of the archive and lets a part be read back from any offset); the parts are
AES-256-CBC under the KSeF session key. After a crash the leftovers are ciphertext whose
key died with the process. Every file is created 0600 and every directory 0700, whatever
the umask.

A batch directory is held under an exclusive `flock` by whoever writes it (the builder
from its first invoice until its parts are sealed, a rebuild until it is resealed), so a
start-up sweep by this or another worker sharing the spool never removes a batch in work;
see `sweep_spool` for what is removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

TMP_SUFFIX = ".tmp"
WRITE_BUFFER_BYTES = 1 << 18
FILE_MODE = 0o600
DIR_MODE = 0o700
SPOOL_KEY_BYTES = 32
_CTR_BLOCK = 16
_CHUNK = 1 << 18  # see crypto.CHUNK_BYTES

# A batch id names its spool directory: plain, short, never a path.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
# The directories the pack stage (and the submit stage's rebuild) make: NIP-hex16[-rebuilt].
PACK_BATCH_DIR = re.compile(r"\d{10}-[0-9a-f]{16}(?:-rebuilt)?")
REBUILT_SUFFIX = "-rebuilt"
_PART_FILE = re.compile(r"part-\d{2}\.aes")


# --- encryption at rest ------------------------------------------------------------------


class SpoolKey:
    """AES-256-CTR key of one spooled package; never written anywhere, never logged."""

    __slots__ = ("_key", "_nonce")

    def __init__(self, key: bytes, nonce: int) -> None:
        if len(key) != SPOOL_KEY_BYTES:
            raise ValueError("a spool key has 32 bytes")
        self._key = key
        self._nonce = nonce

    @classmethod
    def generate(cls) -> SpoolKey:
        # 64 random bits above a 64-bit block counter that starts at 0: the counter never
        # wraps (a package is far below 2**64 blocks), so block n is at nonce + n.
        return cls(os.urandom(SPOOL_KEY_BYTES), int.from_bytes(os.urandom(8), "big") << 64)

    def __repr__(self) -> str:
        return "SpoolKey(<redacted>)"

    def cipher(self, offset: int = 0) -> CipherContext:
        """The keystream from byte `offset` of the file on (encrypting = decrypting)."""
        block, skip = divmod(offset, _CTR_BLOCK)
        counter = ((self._nonce + block) % (1 << 128)).to_bytes(16, "big")
        ctx = Cipher(algorithms.AES(self._key), modes.CTR(counter)).encryptor()
        if skip:
            ctx.update(bytes(skip))
        return ctx

    def decrypt(self, chunks: Iterable[bytes], offset: int = 0) -> Iterator[bytes]:
        """Plaintext of ciphertext `chunks` read from byte `offset` of a spooled file."""
        ctx = self.cipher(offset)
        for chunk in chunks:
            yield ctx.update(chunk)

    def read(self, path: Path, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Plaintext of `path` (written under this key) from `offset`, chunk by chunk."""
        with open(path, "rb") as source:
            source.seek(offset)
            yield from self.decrypt(_chunks(source, length), offset)


def _chunks(stream: BinaryIO, limit: int | None) -> Iterator[bytes]:
    remaining = limit
    while remaining is None or remaining > 0:
        chunk = stream.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


class EncryptingWriter:
    """A write-only stream that encrypts (AES-256-CTR) everything on its way to `sink`."""

    def __init__(self, sink: BinaryIO, key: SpoolKey) -> None:
        self._sink = sink
        self._ctx = key.cipher(0)

    def write(self, data: bytes) -> int:
        self._sink.write(self._ctx.update(data))
        return len(data)


# --- private files and directories -------------------------------------------------------


def private_dir(path: Path) -> Path:
    """Create `path` (and any missing parent) 0700; an existing `path` is set to 0700."""
    if not path.is_dir():
        if not path.parent.is_dir():
            private_dir(path.parent)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, DIR_MODE)
    os.chmod(path, DIR_MODE)  # mkdir's mode is cut by the umask; this one is not
    return path


def open_private(path: Path) -> BinaryIO:
    """A new (truncated) file, 0600 whatever the umask; never follows a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an older file of that name keeps its mode otherwise
        return os.fdopen(fd, "wb", buffering=WRITE_BUFFER_BYTES)
    except BaseException:
        os.close(fd)
        raise


class AtomicFile:
    """A file written under a temporary name and renamed into place by `commit`.

    With `key`, `stream` encrypts what is written to it (the file holds ciphertext only).
    """

    def __init__(self, path: Path, *, fsync: bool = True, key: SpoolKey | None = None) -> None:
        self.path = path
        self.tmp_path = path.with_name(path.name + TMP_SUFFIX)
        self._fsync = fsync
        self._raw = open_private(self.tmp_path)
        self.stream: BinaryIO = (
            self._raw if key is None else EncryptingWriter(self._raw, key)  # type: ignore[assignment]
        )

    def commit(self) -> Path:
        self._raw.flush()
        if self._fsync:
            os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self.tmp_path, self.path)
        if self._fsync:
            sync_directory(self.path.parent)
        return self.path

    def discard(self) -> None:
        self._raw.close()
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_private(path: Path, data: bytes, *, fsync: bool = True) -> Path:
    """Replace `path` atomically with `data`, 0600. The temporary name is unique to this
    call, so workers sharing the spool may write the same file at once."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{os.urandom(4).hex()}{TMP_SUFFIX}")
    try:
        with open_private(tmp) as out:
            out.write(data)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        sync_directory(path.parent)
    return path


def sync_directory(directory: Path) -> None:
    """Make renames in `directory` durable (POSIX; skipped where a directory can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- batch directories: names, ownership, removal ----------------------------------------


def check_batch_id(batch_id: str) -> str:
    """A batch id fit to name a directory: 1-100 of [A-Za-z0-9_-], not starting with - or _."""
    if not isinstance(batch_id, str) or not _SAFE_NAME.fullmatch(batch_id):
        raise ValueError(f"batch id {batch_id!r} is not a safe spool directory name")
    return batch_id


def batch_dir(root: Path, batch_id: str) -> Path:
    """The spool directory of `batch_id` under this worker's spool `root` (never a path
    taken from a record)."""
    return root / check_batch_id(batch_id)


def rebuilt_dir(root: Path, batch_id: str) -> Path:
    return root / (check_batch_id(batch_id) + REBUILT_SUFFIX)


def remove_batch_dirs(root: Path, batch_id: str) -> list[Path]:
    """Remove the spool directories of `batch_id` (as packed and as rebuilt) under `root`.

    Only direct, real (not symlinked) subdirectories of `root` named after a valid batch
    id are touched; an invalid id raises ValueError before anything is removed.
    """
    removed = []
    for path in (batch_dir(root, batch_id), rebuilt_dir(root, batch_id)):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(path).st_mode) and path.parent == root:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


class BatchLock:
    """An exclusive `flock` on a batch directory (created 0700 if missing), held while the
    batch is written. Safe against a sweep that removes the directory meanwhile: the lock
    is only kept on the directory that is at `path` once it is held."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        for _ in range(100):  # each round lost to a sweep removing the directory
            try:
                private_dir(path)
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:  # swept meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held = os.fstat(fd)
                now = os.lstat(path)
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            if held.st_nlink and (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                self._fd = fd
                return
            os.close(fd)  # swept between mkdir and flock: make it again
        raise OSError(errno.EAGAIN, f"cannot hold batch directory {path}")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.release()

    def __enter__(self) -> BatchLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class SweepReport:
    removed: list[Path] = field(default_factory=list)  # unsealed or expired batch dirs
    kept: list[Path] = field(default_factory=list)  # sealed parts, maybe not sent yet
    busy: list[Path] = field(default_factory=list)  # locked: a batch in work
    error: str | None = None  # the sweep stopped (e.g. a spool root this user cannot chmod)


def sweep_spool(root: Path, *, sealed_max_age_s: float, now: float | None = None
                ) -> SweepReport:
    """Remove orphaned batch directories of the pack stage under `root`.

    Only real directories named like the pack stage names them (NIP-hex16, with
    `-rebuilt` for the submit stage's rebuilds) are looked at, and only those no live
    process holds (`BatchLock`); for each:

    - unsealed (a `*.tmp` file, a package file, or no part file at all): removed. Its
      manifest was never published (a package is deleted before the manifest is sent), so
      nothing will ask for it; the invoices come back from Kafka unacknowledged;
    - sealed (only `part-NN.aes` files): kept, since the submit stage may still need them,
      unless the newest file is older than `sealed_max_age_s` (then the submit stage, if it
      still needs the batch, rebuilds it from Kafka like a lost spool).

    Kept files and directories are set to 0600/0700 (older spools were 0644/0755).
    """
    report = SweepReport()
    now = time.time() if now is None else now
    private_dir(root)
    for path in sorted(root.iterdir()):
        if not PACK_BATCH_DIR.fullmatch(path.name):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # not a directory, a symlink, or gone
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                report.busy.append(path)
                continue
            names = os.listdir(fd)
            parts = [n for n in names if _PART_FILE.fullmatch(n)]
            sealed = bool(parts) and len(parts) == len(names)
            newest = max((os.stat(n, dir_fd=fd, follow_symlinks=False).st_mtime
                          for n in names), default=0.0)
            if sealed and now - newest <= sealed_max_age_s:
                os.fchmod(fd, DIR_MODE)
                for name in names:
                    _chmod_regular(fd, name)
                report.kept.append(path)
            else:
                shutil.rmtree(path, ignore_errors=True)
                report.removed.append(path)
        finally:
            os.close(fd)
    return report


def _chmod_regular(dir_fd: int, name: str) -> None:
    if stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
        os.chmod(name, FILE_MODE, dir_fd=dir_fd)
