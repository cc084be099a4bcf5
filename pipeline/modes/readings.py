"""Scrape-time gauges of the mode stage: the KSeF state the pipeline works by, whether
KSeF and Latarnia answer, and how long each context's credential still works."""

from __future__ import annotations

from pipeline.clock import now_utc
from pipeline.metrics import Metrics
from pipeline.modes.web import credential_health, follower
from pipeline.runtime.app import metrics


def _refresh(m: Metrics) -> None:
    state = follower.state
    m.set_state(None if state is None else state.state)
    if state is not None:
        m.ksef_reachable.set(1 if state.ksef_reachable else 0)
        m.latarnia_reachable.set(1 if state.latarnia_reachable else 0)
    now = now_utc()
    m.set_all(m.credential_expiry, {
        (row.nip,): (row.expires_at - now).total_seconds()
        for row in credential_health() if row.expires_at is not None})


metrics.on_scrape("mode", _refresh)
