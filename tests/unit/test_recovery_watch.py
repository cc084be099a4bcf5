"""The recovery watch ends a worker only when a partition that lacks records gets none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import faust
from faust.types import TP

from pipeline.runtime.recovery_watch import RECOVERY_STALLED_EXIT, stalled, watch_recovery

MODE = TP("app-ksef-mode-messages-changelog", 0)
DEDUPE = TP("app-ksef-dedupe-changelog", 3)


def test_a_partition_without_any_record_since_the_start_is_stalled_after_the_limit() -> None:
    assert stalled({MODE: 1}, {}, started_at=100.0, now=219.0, limit_s=120) == []
    assert stalled({MODE: 1}, {}, started_at=100.0, now=220.0, limit_s=120) == [MODE]


def test_records_still_arriving_or_nothing_left_to_read_is_not_a_stall() -> None:
    received = {DEDUPE: 300.0}
    assert stalled({DEDUPE: 5000}, received, started_at=100.0, now=400.0, limit_s=120) == []
    assert stalled({DEDUPE: 0, MODE: 0}, {}, started_at=100.0, now=900.0, limit_s=120) == []
    assert stalled({DEDUPE: 5000}, received, started_at=100.0, now=420.0, limit_s=120) == [
        DEDUPE]


def test_no_recovery_started_or_the_watch_off_never_stalls() -> None:
    assert stalled({MODE: 1}, {}, started_at=None, now=1e9, limit_s=120) == []
    assert stalled({MODE: 1}, {}, started_at=0.0, now=1e9, limit_s=0) == []


class _App:
    """Just what the watch touches: the recovery's state and `timer`."""

    def __init__(self, recovery: Any) -> None:
        self.tables = SimpleNamespace(recovery=recovery)
        self.timers: list[tuple[float, Callable[[], Any]]] = []

    def timer(self, interval: float, name: str) -> Callable[[Any], Any]:
        def register(fun: Callable[[], Any]) -> Callable[[], Any]:
            self.timers.append((interval, fun))
            return fun
        return register


def _recovery(in_recovery: bool, remaining: dict[TP, int]) -> Any:
    return SimpleNamespace(in_recovery=in_recovery, active_remaining=lambda: remaining,
                           _active_events_received_at={}, _recovery_started_at=10.0)


def _tick(recovery: Any, now: float) -> list[int]:
    ended: list[int] = []
    app = _App(recovery)
    watch_recovery(app, 120, end_process=ended.append, clock=lambda: now)
    ((interval, check),) = app.timers
    assert interval == 12
    asyncio.run(check())
    return ended


def test_the_watch_ends_the_process_with_tempfail_only_for_a_stalled_recovery() -> None:
    assert _tick(_recovery(True, {MODE: 1}), now=200.0) == [RECOVERY_STALLED_EXIT]
    assert _tick(_recovery(True, {MODE: 1}), now=100.0) == []
    assert _tick(_recovery(False, {MODE: 1}), now=200.0) == []


def test_the_watch_switched_off_registers_nothing() -> None:
    app = _App(_recovery(True, {MODE: 1}))
    watch_recovery(app, 0, end_process=lambda code: None)
    assert app.timers == []


def test_faust_recovery_has_what_the_watch_reads() -> None:
    """The watch reads Faust internals; an upgrade that renames them fails here."""
    recovery = faust.App("recovery-probe", broker="kafka://127.0.0.1:9").tables.recovery
    assert recovery.in_recovery is False and recovery._recovery_started_at is None
    assert recovery._active_events_received_at == {}
    assert recovery.active_remaining() == {}
