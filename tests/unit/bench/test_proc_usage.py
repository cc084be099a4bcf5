"""/proc sampling for the benchmarks: parsing stat/status text, and a real busy child."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from pipeline.bench.proc_usage import (
    RunUsage,
    StatTimes,
    cpu_ms,
    parse_stat,
    parse_status_kb,
    peak_rss_kb,
    sample,
    spent_ms,
    tree_ticks,
)

# pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
# utime stime cutime cstime ...
STAT = ("4242 (a) b (c)) R 17 4242 4242 0 -1 4194304 100 0 0 0 "
        "250 40 7 3 20 0 1 0 12345 1000000 200 18446744073709551615\n")

STATUS = textwrap.dedent("""\
    Name:\tpython
    State:\tS (sleeping)
    VmPeak:\t  300000 kB
    VmHWM:\t   81234 kB
    VmRSS:\t   80000 kB
    """)


def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    stat = parse_stat(STAT)
    assert stat == StatTimes(pid=4242, ppid=17, state="R", utime=250, stime=40, cutime=7,
                             cstime=3)
    assert stat.ticks == 300


@pytest.mark.parametrize("bad", ["", "4242 a R 1", "4242 (x) R 1 2 3"])
def test_parse_stat_refuses_what_is_not_a_stat_line(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_stat(bad)


def test_parse_status_reads_kb_fields() -> None:
    assert parse_status_kb(STATUS, "VmHWM") == 81234
    assert parse_status_kb(STATUS, "VmRSS") == 80000
    assert parse_status_kb("Name:\tzombie\nState:\tZ (zombie)\n", "VmHWM") is None


def test_tree_ticks_adds_live_descendants_once() -> None:
    def stat(pid: int, ppid: int, utime: int) -> StatTimes:
        return StatTimes(pid, ppid, "S", utime, 1, 0, 0)

    stats = {s.pid: s for s in (stat(10, 1, 5), stat(11, 10, 7), stat(12, 11, 9),
                                stat(20, 1, 100))}
    assert tree_ticks(10, stats) == 6 + 8 + 10
    assert tree_ticks(12, stats) == 10
    assert tree_ticks(99, stats) is None


def test_spent_counts_a_process_started_in_between_from_zero() -> None:
    assert spent_ms({1: 100.0, 2: 50.0}, {1: 130.0, 3: 20.0}) == 30.0 + 20.0


BURNER = textwrap.dedent("""\
    import subprocess, sys, time

    def burn(seconds):
        until = time.process_time() + seconds
        while time.process_time() < until:
            pass

    for line in sys.stdin:
        if line.strip() == "child":  # CPU spent by a child it waits for (cutime)
            subprocess.run([sys.executable, "-c", "import time\\n"
                            "u = time.process_time() + 0.1\\n"
                            "while time.process_time() < u: pass"], check=True)
        else:
            burn(0.1)
        bytearray(20_000_000)  # raises the peak resident set
        print("done", flush=True)
    """)


@pytest.fixture
def burner() -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            yield proc
        finally:
            proc.kill()


def _step(proc: subprocess.Popen[str], what: str = "burn") -> None:
    """Ask the child for one step of work and wait until it says it is done."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(what + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "done\n"


def test_cpu_of_a_busy_child_is_positive_and_grows(burner: subprocess.Popen[str]) -> None:
    _step(burner)
    first = cpu_ms(burner.pid)
    assert first is not None and first > 0
    _step(burner)
    second = cpu_ms(burner.pid)
    assert second is not None and second >= first + 50  # 100 ms of CPU, 10 ms ticks
    _step(burner, "child")  # a reaped child's CPU is the parent's cutime
    third = cpu_ms(burner.pid)
    assert third is not None and third >= second + 50
    peak = peak_rss_kb(burner.pid)
    assert peak is not None and peak > 20_000


def test_run_usage_reports_the_cpu_between_start_and_finish(
        burner: subprocess.Popen[str]) -> None:
    usage = RunUsage(lambda: {"busy": [burner.pid], "me": [os.getpid()]})
    usage.start()
    _step(burner)
    report = usage.finish(peak_rss_of="busy")
    assert report["cpu_ms"]["busy"] >= 50
    assert report["pids"] == {"busy": [burner.pid], "me": [os.getpid()]}
    assert report["restarted"] == {"busy": False, "me": False}
    assert report["peak_rss_kb"][str(burner.pid)] > 20_000


def test_gone_processes_are_left_out() -> None:
    gone = 2**22 + 12345  # above the default pid_max of 4194304
    assert cpu_ms(gone) is None and peak_rss_kb(gone) is None
    assert sample({"x": [gone, os.getpid()]})["x"].keys() == {os.getpid()}
