"""The processes a demo starts: each in its own process group with its own log, and
stopped with everything else when the demo ends (see `pipeline.stopping`)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline import stopping
from pipeline.runtime.broker_log import BrokerStateFilter

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(message: str) -> bool:
    """Print a demo line; False once nobody reads the output any more (never raises)."""
    return stopping.say(f"[demo] {message}")


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (as logging's last resort does):
    a demo run in-process (tests) must not keep a stream that is closed after it."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def console_logs(prefix: str) -> None:
    """The demo's own Kafka clients (ingest, counters) log through Python logging:
    warnings to stderr as `[prefix] ...` lines, a broker restart as one "unreachable"
    and one "reachable again" line instead of hundreds of failed connects."""
    root = logging.getLogger()
    if any(isinstance(h, _Stderr) for h in root.handlers):
        return  # set up once per process
    handler = _Stderr()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter(f"[{prefix}] %(message)s"))
    handler.addFilter(BrokerStateFilter())
    handler.addFilter(_not_a_passing_retry)
    root.addHandler(handler)


# librdkafka's idempotent producer asks a broker that has just started for its id while
# the broker still loads its coordinator state: one warning on every fresh demo broker,
# then it succeeds. Not worth a line on the console (the processes' logs keep theirs).
PASSING_RETRY = "Coordinator load in progress: retrying"


def _not_a_passing_retry(record: logging.LogRecord) -> bool:
    return not (record.name == "librdkafka" and PASSING_RETRY in record.getMessage())


@contextmanager
def process(name: str, cmd: list[str], env: dict[str, str], log_path: Path
            ) -> Iterator[subprocess.Popen[bytes]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            code = stopping.stop_group(proc, 30)
            say(f"{name} stopped (exit code {code})")
