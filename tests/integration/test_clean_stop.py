"""Stopping is bounded and complete: with the output's reader gone, and with the broker gone.

Each test runs its own broker (the demo starts one; the worker test needs one it can
stop), so the session's broker is never disturbed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.runtime.stop_deadline import STOP_DEADLINE_EXIT
from tests.kafka_harness import REPO, KafkaSandbox, start_worker


def processes_of(run_dir: Path) -> dict[int, str]:
    """Live processes (not zombies) whose command line names the run's directory."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(") ", 1)[1][0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if str(run_dir) in cmdline and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def wait_until(condition: object, timeout_s: float, step_s: float = 0.2) -> float:
    """Seconds until `condition()` held; fails after `timeout_s`."""
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - started < timeout_s, f"not within {timeout_s} s"
        time.sleep(step_s)  # /proc and log files have no event to await
    return time.monotonic() - started


def test_demo_piped_into_a_reader_that_exits_leaves_no_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "demo"
    demo = subprocess.Popen([str(REPO / "ops/demo"), "--invoices", "20", "--sellers", "1",
                             "--var", str(run_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=REPO)
    assert demo.stdout is not None
    try:
        lines = [demo.stdout.readline().decode() for _ in range(4)]  # `| head -4`
        assert "Kafka" in lines[0] and "worker 0" in lines[3], lines
        wanted = ("kafka.Kafka", "cli emulator", "cli worker")

        def all_up() -> bool:  # a child just forked shows its parent's command line
            names = " ".join(processes_of(run_dir).values())
            return all(n in names for n in wanted)

        wait_until(all_up, 30)
        started = processes_of(run_dir)
        demo.stdout.close()  # the reader exits
        t0 = time.monotonic()
        code = demo.wait(90)
        gone_s = wait_until(lambda: not processes_of(run_dir), 30)
        print(f"demo exited {time.monotonic() - t0 - gone_s:.1f} s after its reader "
              f"(code {code}); {len(started)} processes of the run gone after "
              f"{time.monotonic() - t0:.1f} s: {sorted(started)}")
        assert not (run_dir / "kafka/pid").exists()
    finally:
        for pid in processes_of(run_dir):  # only what this test started
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {**os.environ, "KAFKA_RUN_DIR": str(tmp_path / "kafka")}
    out = subprocess.run([str(REPO / "ops/kafka/start")], env=env, check=True,
                         capture_output=True, text=True, timeout=300)
    try:
        yield out.stdout.strip().splitlines()[-1], env
    finally:
        subprocess.run([str(REPO / "ops/kafka/stop")], env=env, check=False, timeout=120,
                       capture_output=True)


def test_worker_without_broker_logs_state_changes_and_stops_within_15_s(
        own_broker: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    bootstrap, broker_env = own_broker
    sandbox = KafkaSandbox(bootstrap)
    sandbox.create_topics()
    worker = start_worker(sandbox, tmp_path, "--stages", "validate",
                          KSEF_BROKER_LOG_REMINDER_S="8")
    try:
        worker.wait_for_log(r"\]: Worker ready", "ready")
        subprocess.run([str(REPO / "ops/kafka/stop")], env=broker_env, check=True,
                       timeout=120, capture_output=True)
        worker.wait_for_log("broker unreachable", "the broker lost", 30)
        before = len(worker.log().splitlines())
        time.sleep(20)  # the property is about a span of time: how much it logs in 20 s
        window = worker.log().splitlines()[before:]
        reminders = [line for line in window if "broker still unreachable" in line]
        print(f"{len(window)} log lines in 20 s without a broker; reminders: {reminders}")
        assert len(window) <= 10, "\n".join(window[:40])
        assert 2 <= len(reminders) <= 3, window
        assert all(int(re.search(r"; (\d+) similar lines suppressed", r)[1]) > 10  # type: ignore[index]
                   for r in reminders), reminders
        assert worker.log().count("broker unreachable") == 1

        t0 = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(20)
        stop_s = time.monotonic() - t0
        print(f"worker exited {stop_s:.1f} s after SIGTERM with code {code}")
        assert stop_s < 15
        if code == STOP_DEADLINE_EXIT:
            assert "worker did not stop within 12 s of SIGTERM" in worker.log()
    finally:
        worker.stop(signal.SIGKILL)
