"""What to print beside every figure: the machine's size and how busy it was."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def load_note() -> str:
    """CPU count and 1/5/15-minute load averages, e.g. `cpus=2 load=0.41,0.54,1.02`."""
    one, five, fifteen = os.getloadavg()
    return f"cpus={os.cpu_count()} load={one:.2f},{five:.2f},{fifteen:.2f}"


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so a stopped benchmark still stops its broker and
    workers (the `finally` blocks run) instead of leaving them behind."""

    def stop(signum: int, _frame: Any) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
