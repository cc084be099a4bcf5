"""Importing the app module sets nothing up: logging is configured by the worker command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, logging
import structlog
import pipeline.runtime.app
print(json.dumps({"root_handlers": len(logging.getLogger().handlers),
                  "structlog_configured": structlog.is_configured()}))
"""


def test_importing_the_app_configures_no_logging() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSEF_")}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {
        "root_handlers": 0, "structlog_configured": False}
