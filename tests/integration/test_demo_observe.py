"""Acceptance (Observability, point 3): a real Prometheus scrapes a real demo.

`ops/demo --observe` (its own broker, the emulator, a worker, Prometheus from the Debian
package) runs 200 invoices and 10 defective ones; once the demo's summary line is out,
Prometheus's HTTP API must count what the demo counted: `ksef_outcomes_total` by result
equals its accepted/rejected totals, so do the records the workers produced on
`ksef.invoices.outcomes`, and every worker is `up`. SIGTERM then stops the demo and
Prometheus with it.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from pipeline.demo.observe import INSTALL_HINT, prometheus_binary
from tests.integration.test_clean_stop import processes_of, wait_until
from tests.kafka_harness import REPO

INVOICES = 200
BAD = 10  # defective: each ends with a rejection, so both results are counted
SUMMARY = re.compile(r"^submitted=(\d+) accepted=(\d+) rejected=(\d+) ")
WORKER = re.compile(r"\[demo\] worker (\d+): http://127\.0\.0\.1:(\d+)/")
PROMETHEUS = re.compile(r"\[demo\] Prometheus at (http://127\.0\.0\.1:\d+/) ")


class Lines:
    """The demo's output, line by line, awaited with a timeout (a reader thread)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True, name="demo-stdout").start()

    def until(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no {pattern.pattern!r} within {timeout_s} s:\n" + self.tail())
            if line is None:
                pytest.fail(f"the demo ended before {pattern.pattern!r}:\n" + self.tail())
            self.seen.append(line)
            if found := pattern.search(line):
                return found

    def tail(self) -> str:
        return "\n".join(self.seen[-40:])


def query(url: str, promql: str) -> list[dict[str, object]]:
    """An instant query's result vector."""
    address = f"{url}api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(address, timeout=10) as answer:
        body = json.load(answer)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def total(url: str, promql: str) -> float:
    """A `sum(...)`'s value; no series at all counts as 0."""
    result = query(url, promql)
    return float(result[0]["value"][1]) if result else 0.0  # type: ignore[index]


def test_prometheus_counts_what_the_demo_counted(tmp_path: Path) -> None:
    if prometheus_binary() is None:
        pytest.fail(INSTALL_HINT)  # ops/test installs it; never skipped silently
    var = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(REPO), "KAFKA_HEAP": "256m"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the demo starts its own broker
    demo = subprocess.Popen(
        [sys.executable, "-m", "pipeline.demo", "--observe", "--invoices", str(INVOICES),
         "--bad", str(BAD), "--sellers", "2", "--linger", "1", "--var", str(var)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = Lines(demo)
    try:
        ports = {int(lines.until(WORKER, 180)[2])}  # one worker: the demo's default
        url = lines.until(PROMETHEUS, 60)[1]
        prometheus = [p for p, cmd in processes_of(var).items() if "prometheus" in cmd
                      and "--config.file" in cmd]
        assert len(prometheus) == 1, processes_of(var)
        summary = lines.until(SUMMARY, 240)
        submitted, accepted, rejected = (int(summary[i]) for i in (1, 2, 3))
        assert submitted == accepted + rejected == INVOICES + BAD, lines.tail()
        assert accepted > 0 and rejected >= BAD, lines.tail()

        expected = {
            "up": {f"127.0.0.1:{port}": 1.0 for port in ports},
            "records produced on outcomes": float(accepted),
            "outcomes accepted": float(accepted),
            "outcomes rejected": float(rejected),
        }

        def observed() -> dict[str, object]:
            return {
                "up": {str(r["metric"]["instance"]): float(r["value"][1])  # type: ignore[index]
                       for r in query(url, 'up{job="ksef-pipeline"}')},
                "records produced on outcomes": total(url, 'sum(ksef_records_produced_total'
                                                      '{topic="ksef.invoices.outcomes"})'),
                "outcomes accepted": total(url, 'sum(ksef_outcomes_total{result="accepted"})'),
                "outcomes rejected": total(url, 'sum(ksef_outcomes_total{result="rejected"})'),
            }

        seen: dict[str, object] = {}

        def caught_up() -> bool:
            seen.update(observed())
            return seen == expected

        # Prometheus scrapes every 2 s on its own schedule, and the workers count outcomes as
        # their own readers get to them: polling its API is the wait (generous: a loaded
        # 2-core machine delays both).
        deadline = time.monotonic() + 90
        while not caught_up() and time.monotonic() < deadline:
            time.sleep(1)
        print(f"demo: accepted={accepted} rejected={rejected}; Prometheus {url}: {seen}")
        assert seen == expected

        demo.send_signal(signal.SIGTERM)
        assert demo.wait(120) == 0, lines.tail()
        lines.until(re.compile(r"\[demo\] Kafka stopped"), 10)
        assert "[demo] Prometheus stopped (exit code 0)" in lines.seen, lines.tail()
        assert not [p for p in prometheus if p in processes_of(var)], processes_of(var)
        wait_until(lambda: not processes_of(var), 30)
    finally:
        if demo.poll() is None:  # a failed assertion: stop it as Ctrl-C would, then hard
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(120)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait(30)
        for pid in processes_of(var):  # only what this test started
            os.kill(pid, signal.SIGKILL)
