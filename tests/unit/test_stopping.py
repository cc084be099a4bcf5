"""Stopping never depends on the output stream: real pipes and real process groups."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pipeline.stopping import stop_group

REPO = Path(__file__).resolve().parents[2]
WRITER = textwrap.dedent("""
    import subprocess, sys, time
    from pipeline import stopping
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                             start_new_session=True)
    print(child.pid, flush=True)
    while not stopping.output_gone():
        time.sleep(0.05)
    said = stopping.say("stopping the child ...")   # the reader is gone: must not raise
    code = stopping.stop_group(child, 10)
    stopping.say(f"stopped ({code})")
    sys.stderr.write(f"said={said} gone={stopping.output_gone()} code={code}\\n")
""")


def test_a_reader_going_away_is_noticed_and_the_cleanup_still_runs() -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    proc.stdout.close()  # the reader exits
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert f"said=False gone=True code={-15}" in err.decode(), err.decode()
    assert b"BrokenPipeError" not in err
    assert not _alive(child)


def test_stop_group_takes_the_grandchildren_along() -> None:
    script = ("import subprocess, sys, time\n"
              "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              "print(g.pid, flush=True)\n"
              "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    started = time.monotonic()
    assert stop_group(proc, 10) == -15
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)  # reaped by init, not by us: nothing to wait on
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
