"""Files in the spool directory appear whole or not at all.

A worker killed mid-write leaves only a `.tmp` file, which nothing mistakes for a finished
package or part; the rename happens once the data is complete (and fsynced when asked).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

TMP_SUFFIX = ".tmp"
WRITE_BUFFER_BYTES = 1 << 20


class AtomicFile:
    """A file written under a temporary name and renamed into place by `commit`."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.tmp_path = path.with_name(path.name + TMP_SUFFIX)
        self._fsync = fsync
        self.stream: BinaryIO = open(self.tmp_path, "wb", buffering=WRITE_BUFFER_BYTES)  # noqa: SIM115

    def commit(self) -> Path:
        self.stream.flush()
        if self._fsync:
            os.fsync(self.stream.fileno())
        self.stream.close()
        os.replace(self.tmp_path, self.path)
        if self._fsync:
            sync_directory(self.path.parent)
        return self.path

    def discard(self) -> None:
        self.stream.close()
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
