"""Give the memory a worker freed back to the operating system, twice a second.

glibc keeps what a process frees inside its heap and gives back only the heap's top: a
10,000-invoice burst (invoice bytes, fetch buffers, manifests, each a few KB to a few
MB) left 15 to 20 MB free in the heap of the all-stages worker, counted in its resident
size for the rest of its life. `malloc_trim(0)` also releases the free pages inside the
heap; measured on `ops/bench e2e`, it took 5 to 10 MB off the 10,000-invoice peak. It
runs in a thread (ctypes lets go of the GIL), off the event loop; on a C library without
it (musl, macOS) nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable
from typing import Any

from pipeline.runtime import logs

log = logs.get(__name__)

Trim = Callable[[], int]


def malloc_trim() -> Trim | None:
    """glibc's `malloc_trim(0)`, or None where the C library has none."""
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return lambda: int(function(0))


def return_freed_memory(app: Any, interval_s: float, trim: Trim | None = None) -> bool:
    """Register a timer on `app` that trims the heap every `interval_s` seconds (0: off);
    whether one was registered."""
    if interval_s <= 0:
        return False
    trim = trim if trim is not None else malloc_trim()
    if trim is None:
        log.info("no malloc_trim in this C library: freed memory stays with the worker")
        return False
    release: Trim = trim

    async def give_back() -> None:
        await asyncio.to_thread(release)

    app.timer(interval_s, name="memory-return")(give_back)
    return True
