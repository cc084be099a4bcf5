"""Stopping what a command started, whatever happened to its output.

`ops/demo | tee demo.log`, then Ctrl-C: tee is gone first, so the demo's "stopping ..."
hit a closed pipe, raised BrokenPipeError, and the cleanup never reached the broker,
the emulator or the worker. Here, writing never raises (a reader gone silences the
output for good), children are stopped before anything is said about them, each child
runs in its own process group so its own children go with it, and SIGHUP (a closed
terminal) stops like SIGINT and SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import subprocess
import sys
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def say(line: str) -> bool:
    """Print a line; False (and stdout silenced from now on) when its reader is gone."""
    try:
        print(line, flush=True)
        return True
    except (OSError, ValueError):  # EPIPE, or stdout already closed
        _silence_stdout()
        return False


def _silence_stdout() -> None:
    """Send stdout to /dev/null for good, so neither we nor Python's exit flush fail again.

    fd 1 is pointed there too (what the failed write left in the old buffer goes
    nowhere); the new `sys.stdout` object is how `output_gone` remembers it.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)


def output_gone(fd: int = 1) -> bool:
    """True when `say` found the reader gone, or `fd` is a pipe whose reader has exited
    (found without writing to it)."""
    if sys.stdout is not sys.__stdout__ and getattr(sys.stdout, "name", "") == os.devnull:
        return True
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except OSError:
        return True


def on_stop_signals(handler: Callable[[int], None]) -> None:
    """Call `handler(signum)` on SIGINT, SIGTERM and SIGHUP instead of dying mid-cleanup."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda n, _frame: handler(n))


def stop_group(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int | None:
    """SIGTERM the child's process group, SIGKILL it after `timeout_s`; its exit code.

    The child must have been started with `start_new_session=True` (its pid is its
    group id); signalling the group reaches whatever it started in turn.
    """
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
    _signal_group(proc.pid, signal.SIGKILL)  # a grandchild that outlived its parent
    return proc.returncode


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
