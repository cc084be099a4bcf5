"""CPU time and peak memory of running processes, read from Linux /proc.

`/proc/<pid>/stat` gives a process's user and system time and those of its children that
it has waited for (utime, stime, cutime, cstime, in clock ticks); `/proc/<pid>/status`
its peak resident set (VmHWM). A process's CPU here is that of its whole live tree: its
own, its reaped children's and, for each live descendant, the same again, so a helper
process a worker or the emulator starts is counted once, alive or reaped.

The parsing functions take the files' text, so they are tested without a process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


@dataclass(frozen=True)
class StatTimes:
    """The CPU fields of one /proc/<pid>/stat line, in clock ticks."""

    pid: int
    ppid: int
    state: str
    utime: int
    stime: int
    cutime: int
    cstime: int

    @property
    def ticks(self) -> int:
        """Own user + system time plus that of the children it has reaped."""
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> StatTimes:
    """Read /proc/<pid>/stat. The command name (field 2) is in parentheses and may hold
    spaces and parentheses itself, so fields are counted from its last ')'."""
    head, paren, tail = text.rpartition(")")
    if not paren or "(" not in head:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    pid = int(head.split("(", 1)[0])
    fields = tail.split()  # fields[0] is field 3 (state); utime is field 14
    if len(fields) < 15:
        raise ValueError(f"/proc/<pid>/stat line too short: {text[:80]!r}")
    return StatTimes(pid=pid, ppid=int(fields[1]), state=fields[0], utime=int(fields[11]),
                     stime=int(fields[12]), cutime=int(fields[13]), cstime=int(fields[14]))


def parse_status_kb(text: str, name: str) -> int | None:
    """A `Name:   1234 kB` field of /proc/<pid>/status in kB; None when absent (a zombie
    or kernel thread has no Vm* lines)."""
    prefix = name + ":"
    for line in text.splitlines():
        if line.startswith(prefix):
            return int(line[len(prefix):].split()[0])
    return None


def ticks_to_ms(ticks: int) -> float:
    return 1000.0 * ticks / os.sysconf("SC_CLK_TCK")


def read_stat(pid: int, proc: Path = PROC) -> StatTimes | None:
    """The stat of `pid`; None when it is gone."""
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def all_stats(proc: Path = PROC) -> dict[int, StatTimes]:
    """The stat of every process now (those that end while we read are left out)."""
    out: dict[int, StatTimes] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None:
                out[stat.pid] = stat
    return out


def tree_ticks(root: int, stats: dict[int, StatTimes]) -> int | None:
    """CPU ticks of `root` and every live descendant in `stats`; None when `root` is gone."""
    if root not in stats:
        return None
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += stats[pid].ticks
        todo.extend(children.get(pid, ()))
    return total


def cpu_ms(pid: int, proc: Path = PROC) -> float | None:
    """CPU milliseconds of `pid` and its descendants so far; None when it is gone."""
    ticks = tree_ticks(pid, all_stats(proc))
    return None if ticks is None else ticks_to_ms(ticks)


def peak_rss_kb(pid: int, proc: Path = PROC) -> int | None:
    """VmHWM of `pid` (its peak resident set) in kB; None when gone or not readable."""
    try:
        return parse_status_kb((proc / str(pid) / "status").read_text(), "VmHWM")
    except (FileNotFoundError, ProcessLookupError):
        return None


def sample(groups: Mapping[str, Iterable[int]], proc: Path = PROC) -> dict[str, dict[int, float]]:
    """CPU ms per process (tree) of each group, from one pass over /proc: {group: {pid: ms}}.
    A pid that is gone is left out."""
    stats = all_stats(proc)
    out: dict[str, dict[int, float]] = {}
    for group, pids in groups.items():
        out[group] = {}
        for pid in pids:
            ticks = tree_ticks(pid, stats)
            if ticks is not None:
                out[group][pid] = ticks_to_ms(ticks)
    return out


def spent_ms(start: dict[int, float], end: dict[int, float]) -> float:
    """CPU ms a group used between two samples: per pid seen at the end, its end value less
    its start value (0 for a process started in between, e.g. a restarted worker)."""
    return sum(ms - start.get(pid, 0.0) for pid, ms in end.items())


class RunUsage:
    """CPU of groups of processes between two moments of a run, and their peak RSS at the
    second: `start()` at the start of the measured work, `finish()` at its end.

    `groups` is called at each moment, so a process restarted in between is found (its
    CPU counts from its start; the CPU of the one it replaced is lost, see `restarted`).
    """

    def __init__(self, groups: Callable[[], dict[str, list[int]]]) -> None:
        self._groups = groups
        self._start: dict[str, dict[int, float]] = {}
        self._started_at = 0.0

    def start(self) -> None:
        self._start = sample(self._groups())
        self._started_at = time.monotonic()

    def finish(self, peak_rss_of: str) -> dict[str, Any]:
        """{"seconds", "cpu_ms": {group: ms}, "pids": {group: [pid]}, "restarted":
        {group: bool}, "peak_rss_kb": {pid: kB} of the processes of group `peak_rss_of`}."""
        seconds = time.monotonic() - self._started_at
        groups = self._groups()
        end = sample(groups)
        return {
            "seconds": round(seconds, 3),
            "cpu_ms": {g: round(spent_ms(self._start.get(g, {}), end[g]), 1) for g in end},
            "pids": {g: sorted(end[g]) for g in end},
            "restarted": {g: set(end[g]) != set(self._start.get(g, {})) for g in end},
            "peak_rss_kb": {str(pid): peak_rss_kb(pid) for pid in groups.get(peak_rss_of, [])},
        }
