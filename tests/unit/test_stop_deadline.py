"""A worker told to stop exits at its deadline with a line saying so, whatever blocks it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pipeline.runtime.stop_deadline import STOP_DEADLINE_EXIT

REPO = Path(__file__).resolve().parents[2]
STUCK = """
import logging, time
from pipeline.runtime import logs
from pipeline.runtime.stop_deadline import exit_after
logs.configure("info")
exit_after(0.5, "SIGTERM")
while True:
    time.sleep(60)   # a stop that never finishes (Faust waiting on a broker that is gone)
"""


def test_the_deadline_ends_a_stuck_stop_with_a_clear_line() -> None:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", STUCK], cwd=REPO, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == STOP_DEADLINE_EXIT, out.stderr
    assert time.monotonic() - started < 10
    assert "worker did not stop within 0.5 s of SIGTERM; exiting now (exit code 124)" \
        in out.stderr, out.stderr
