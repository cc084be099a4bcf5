"""`ops/demo`: the main job on embedded defaults.

Starts a local Kafka broker (ops/kafka), creates the topic catalog, starts the worker(s)
and prints where everything is; Ctrl-C (or SIGTERM) stops everything it started, so two
runs in a row never meet a stale broker or a taken port.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


@contextmanager
def kafka_broker(run_dir: Path) -> Iterator[str]:
    env = {**os.environ, "KAFKA_RUN_DIR": str(run_dir)}
    subprocess.run([str(REPO / "ops/kafka/stop")], env=env, check=False,
                   stderr=subprocess.DEVNULL)  # a previous run killed hard leaves a pid file
    out = subprocess.run([str(REPO / "ops/kafka/start")], env=env, check=True,
                         stdout=subprocess.PIPE, text=True)
    bootstrap = out.stdout.strip().splitlines()[-1]
    try:
        yield bootstrap
    finally:
        say("stopping Kafka ...")
        subprocess.run([str(REPO / "ops/kafka/stop")], env=env, check=False)


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
            say(f"stopping {name} ...")
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ops/demo", description=__doc__)
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--var", default=str(REPO / "var/demo"), help="state and logs directory")
    p.add_argument("--run-for", type=float, default=None,
                   help="stop by itself after this many seconds (default: until Ctrl-C)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    var = Path(args.var)
    stop = {"requested": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with ExitStack() as stack:
        bootstrap = stack.enter_context(kafka_broker(var / "kafka"))
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1"}
        subprocess.run([sys.executable, "-m", "pipeline.cli", "topics", "create"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        say(f"Kafka {os.environ.get('KAFKA_VERSION', '3.9.1')} at {bootstrap}, "
            f"logs in {var / 'kafka'}; topic catalog created")
        procs = []
        for i in range(args.workers):
            port = _free_port()
            cmd = [sys.executable, "-m", "pipeline.cli", "worker", "--web-port", str(port),
                   "--data-dir", str(var / f"worker-{i}")]
            procs.append(stack.enter_context(
                process(f"worker {i}", cmd, env, var / f"worker-{i}.log")))
            say(f"worker {i}: http://127.0.0.1:{port}/  log {var / f'worker-{i}.log'}")
        say("running; Ctrl-C stops everything")
        started = time.monotonic()
        while not stop["requested"]:
            if args.run_for is not None and time.monotonic() - started >= args.run_for:
                break
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                say(f"a worker exited with {dead[0].returncode}; see its log; stopping")
                return 1
            time.sleep(0.2)
    say("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
