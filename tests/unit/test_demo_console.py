"""The demo's and chaos run's own Kafka clients: a broker restart is one line, not hundreds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
logging.getLogger("pipeline.demo").info("not shown: below warning")
"""


def test_a_flood_of_failed_connects_is_one_line_and_other_warnings_pass() -> None:
    done = subprocess.run([sys.executable, "-c", FLOOD], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=True)
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("[chaos] broker unreachable (librdkafka: FAIL")
    assert lines[1] == "[chaos] GETPID [rdkafka#producer-3] something else"
