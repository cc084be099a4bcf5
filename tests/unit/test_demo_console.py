"""The demo's and chaos run's own Kafka clients: a broker restart is one line, not hundreds."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.demo.processes import console_logs

REPO = Path(__file__).resolve().parents[2]
FLOOD = """
import logging
from pipeline.demo.processes import console_logs
console_logs("chaos")
console_logs("chaos")  # a second call adds nothing
log = logging.getLogger("librdkafka")
for _ in range(200):
    log.error("FAIL [rdkafka#consumer-1] [thrd:127.0.0.1:9/bootstrap]: Connect to "
              "ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)")
log.warning("GETPID [rdkafka#producer-3] something else")
log.warning("GETPID [rdkafka#producer-2] [thrd:main]: Failed to acquire idempotence PID from "
            "broker 127.0.0.1:9/1: Broker: Coordinator load in progress: retrying")
logging.getLogger("pipeline.demo").info("not shown: below warning")
"""


def test_a_flood_of_failed_connects_is_one_line_and_other_warnings_pass() -> None:
    done = subprocess.run([sys.executable, "-c", FLOOD], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=True)
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("[chaos] broker unreachable (librdkafka: FAIL")
    assert lines[1] == "[chaos] GETPID [rdkafka#producer-3] something else"


def test_a_demo_run_in_process_leaves_no_handler_on_a_closed_stream(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run the demo's `main` in-process: its handler must write to the stderr of
    the moment, not to the one captured then closed (a later flush of every handler
    failed on it)."""
    root = logging.getLogger()
    before = list(root.handlers)
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    console_logs("demo")
    added = [h for h in root.handlers if h not in before]
    try:
        captured.close()
        later = io.StringIO()
        monkeypatch.setattr(sys, "stderr", later)
        logging.getLogger("pipeline.demo.test").warning("after the capture closed")
        for handler in added:
            handler.flush()
        assert "[demo] after the capture closed" in later.getvalue()
    finally:
        for handler in added:
            root.removeHandler(handler)
