"""One worker per data directory: the first holds a lock on it for its whole life.

Two workers started on one `--data-dir` shared RocksDB stores (the invoice ledger, the
duplicate table) and the spool; the second crashed a few seconds in with RocksDB's "While
lock file: .../LOCK: Resource temporarily unavailable" among a hundred lines of Faust
shutting down. The lock is taken before anything starts, so the second worker is refused
at once, with the directory and the holder's pid. It is an advisory `flock` on a file in
the directory: the kernel drops it when the holder exits, even by SIGKILL, so a killed
worker never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = ".worker.lock"


class DataDirBusy(RuntimeError):
    """Another live process holds the data directory."""


def hold_data_dir(directory: Path | str) -> IO[str]:
    """Lock `directory` (created if need be) for this process; keep the returned file
    open as long as the worker runs. Raises DataDirBusy when another process holds it."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / LOCK_NAME, "a+", encoding="ascii")  # noqa: SIM115 (held for life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise DataDirBusy(f"data dir {path} is in use by another worker (pid {holder}); "
                          "give each worker its own --data-dir (KSEF_DATA_DIR)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
