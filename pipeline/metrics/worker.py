"""Scrape-time readings every worker has, whatever stages it runs: consumer lag per
topic and partition, table recovery state, and the spool's size."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.metrics.families import RECOVERY_STATES, Metrics


def consumer_lag(consumer: Any) -> dict[tuple[str, str], float]:
    """(topic, partition) -> records not consumed yet, for the partitions assigned now.

    High watermark minus the next offset to read (the last read + 1; the committed
    offset before anything was read). Partitions whose watermark is not known yet are
    left out rather than guessed."""
    lags: dict[tuple[str, str], float] = {}
    try:
        assigned = consumer.assignment()
    except Exception:  # no consumer yet (starting, stopping)
        return lags
    for tp in assigned:
        try:
            high = consumer.highwater(tp)
        except Exception:  # not fetched yet
            continue
        if high is None:
            continue
        read = consumer._read_offset.get(tp)
        if read is not None:
            position = read + 1
        else:
            committed = consumer._committed_offset.get(tp)
            position = committed if committed is not None else high
        lags[(tp.topic, str(tp.partition))] = float(max(0, high - position))
    return lags


def spool_bytes(root: Path | None) -> int:
    """Bytes of every file under the spool root (0 when it does not exist)."""
    if root is None or not root.is_dir():
        return 0
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += (Path(folder) / name).stat().st_size
            except OSError:
                continue  # removed while we walked: a finished batch
    return total


def watch_worker(app: Any, metrics: Metrics, spool_root: Path | None) -> None:
    """Register the worker-wide readings with `metrics`."""

    def refresh(m: Metrics) -> None:
        lags = consumer_lag(app.consumer)
        for source in m.lag_sources:
            lags.update(source())
        m.set_all(m.consumer_lag, lags)
        recovery = app.tables.recovery
        current = "recovering" if getattr(recovery, "in_recovery", False) else "ready"
        for state in RECOVERY_STATES:
            m.recovery.labels(state).set(1 if state == current else 0)
        m.spool_bytes.set(spool_bytes(spool_root))

    metrics.on_scrape("worker", refresh)
