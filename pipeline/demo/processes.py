"""The processes a demo starts: each in its own process group with its own log, and
stopped with everything else when the demo ends (see `pipeline.stopping`)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import stopping

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(message: str) -> bool:
    """Print a demo line; False once nobody reads the output any more (never raises)."""
    return stopping.say(f"[demo] {message}")


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
