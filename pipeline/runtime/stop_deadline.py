"""A worker told to stop is gone within a bounded time, whatever its broker does.

Faust stops a worker by leaving the consumer group and committing; with the broker
away each of those waits for its own timeout (seen: 64 s after SIGTERM), longer than
any supervisor waits before SIGKILL. Here the first stop signal (SIGTERM, SIGINT, and
SIGHUP, which Faust does not handle) arms a timer that ends the process after
`deadline_s` with a log line saying so. Nothing acknowledged is lost: Faust commits an
offset only after the record was handled and its output flushed (`ProduceGuard`), so an
exit before the commit means its records are delivered again, which every stage
tolerates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import faust

STOP_DEADLINE_EXIT = 124  # like timeout(1): the process was ended by its time limit
LOG = "pipeline.runtime.stop_deadline"


def exit_after(deadline_s: float, why: str) -> threading.Timer:
    """Start a daemon timer that logs and ends the process after `deadline_s`."""

    def hard_exit() -> None:
        logging.getLogger(LOG).error(
            "worker did not stop within %g s of %s; exiting now (exit code %d): offsets "
            "of records not yet handled were not committed and are delivered again",
            deadline_s, why, STOP_DEADLINE_EXIT)
        for stream in (sys.stderr, sys.stdout):
            with contextlib.suppress(OSError, ValueError):  # its reader may be gone
                stream.flush()
        os._exit(STOP_DEADLINE_EXIT)

    timer = threading.Timer(deadline_s, hard_exit)
    timer.daemon = True
    timer.name = "stop-deadline"
    timer.start()
    return timer


def worker_class(deadline_s: float,
                 stopped: Callable[[], Awaitable[None]] | None = None) -> type[faust.Worker]:
    """A Faust Worker that also stops on SIGHUP and never takes longer than `deadline_s`;
    `stopped` runs once the app and its services have stopped, before the event loop
    closes (HTTP clients closed there are not reported as unclosed at exit)."""

    class DeadlineWorker(faust.Worker):
        _stop_timer: threading.Timer | None = None

        async def on_shutdown(self) -> None:
            await super().on_shutdown()
            if stopped is not None:
                try:
                    await stopped()
                except Exception:  # the worker stops anyway
                    logging.getLogger(LOG).exception("closing the worker's clients failed")

        def _install_signal_handlers_unix(self) -> None:
            super()._install_signal_handlers_unix()
            self.loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

        def _on_sighup(self) -> None:
            self._flag_as_shutdown_by_signal()  # what Faust does for SIGTERM
            self._schedule_shutdown(signal.SIGHUP)

        def _schedule_shutdown(self, signum: Any) -> None:
            if self._stop_timer is None and deadline_s > 0:
                self._stop_timer = exit_after(deadline_s, signal.Signals(signum).name)
            super()._schedule_shutdown(signum)

    return DeadlineWorker
