"""Stop a worker whose table recovery has stalled, so that it is restarted.

While Faust recovers a table from its changelog every stream of the worker waits. A
recovery that never gets the changelog records it waits for (seen once: the re-read of
a partition the worker kept over a rebalance) holds the worker's partitions forever
while it looks alive: it answers heartbeats and its web page, and only a warning every
few seconds tells. A fresh process recovers such a partition at once, so the watch logs
an error and ends the process with EX_TEMPFAIL once a partition that still lacks
records has received none for KSEF_RECOVERY_STALL_S seconds (0 turns it off); its
supervisor (systemd, Kubernetes, `ops/demo`) starts it again. Nothing is in flight then:
recovery holds the streams, and what was handled but not committed is handled again.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.runtime import logs

log = logs.get(__name__)

RECOVERY_STALLED_EXIT = 75  # EX_TEMPFAIL: try again


def stalled(remaining: Mapping[Any, int], received_at: Mapping[Any, float],
            started_at: float | None, now: float, limit_s: float) -> list[Any]:
    """Partitions that still lack records and got none for `limit_s` seconds (counted
    from the recovery's start for those that got none at all)."""
    if started_at is None or limit_s <= 0:
        return []
    return [tp for tp, left in remaining.items()
            if left > 0 and now - received_at.get(tp, started_at) >= limit_s]


def watch_recovery(app: Any, limit_s: float,
                   end_process: Callable[[int], Any] = os._exit,
                   clock: Callable[[], float] = time.monotonic) -> None:
    """Register a timer on `app` that ends the process when its recovery stalls."""
    if limit_s <= 0:
        return
    recovery = app.tables.recovery

    async def check() -> None:
        if not recovery.in_recovery:
            return
        stuck = stalled(recovery.active_remaining(), recovery._active_events_received_at,
                        recovery._recovery_started_at, clock(), limit_s)
        if not stuck:
            return
        log.error("table recovery stalled: no changelog record arrived; stopping the "
                  "worker so that a fresh process recovers the tables",
                  partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in stuck),
                  waited_s=limit_s, exit_code=RECOVERY_STALLED_EXIT)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        end_process(RECOVERY_STALLED_EXIT)

    app.timer(max(1.0, limit_s / 10), name="recovery-watch")(check)
