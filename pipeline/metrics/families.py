"""Every metric family a worker exposes on `/metrics`, on the worker's own registry.

Names follow Prometheus conventions: `ksef_` prefix, base units (seconds, bytes),
`_total` counters. Labels are bounded: stage, reason, result, mode, deadline bucket,
topic and partition, seller context (the configured NIPs), endpoint group, status
class. Never an invoice id, number or session reference.

Counters are counted where the event happens (a stage handling a record, a KSeF
answer); gauges that describe the worker's present state are refreshed just before a
scrape by the callbacks stages register with `on_scrape`, so nothing is computed
between scrapes. One `Metrics` per worker process, built by the app (no global registry:
tests build their own).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pipeline.metrics.recent import RecentCounts
from pipeline.runtime import logs

log = logs.get(__name__)

STAGES = ("validate", "pack", "submit", "submit-interactive", "upo")
KSEF_STATES = ("AVAILABLE", "UNKNOWN", "MAINTENANCE", "FAILURE", "TOTAL_FAILURE",
               "OBSERVED_OUTAGE")
DEADLINE_BUCKETS = ("overdue", "lt_1h", "lt_24h", "lt_7d", "later", "open", "exempt")
RECOVERY_STATES = ("recovering", "ready")
# Ingest to outcome: seconds for a lone invoice, a batch's linger and session, hours
# to days after an outage (the legal deadline is days away).
LATENCY_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600,
                   24 * 3600, 7 * 24 * 3600)
UPO_WAIT_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Labels from records (a rejection's stage and reason) stay bounded whatever a producer
# wrote: a short slug, and at most this many distinct pairs; anything else is "other".
_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,47}")
MAX_REJECTION_LABELS = 200

Refresh = Callable[["Metrics"], None]


def deadline_bucket(status: str, due: dt.datetime | None, now: dt.datetime) -> str:
    """The `bucket` label of a pending invoice: how long until its legal deadline."""
    if status != "due" or due is None:
        return status if status in ("open", "exempt") else "open"
    left = (due - now).total_seconds()
    if left < 0:
        return "overdue"
    if left < 3600:
        return "lt_1h"
    if left < 24 * 3600:
        return "lt_24h"
    if left < 7 * 24 * 3600:
        return "lt_7d"
    return "later"


def _slug(value: str) -> str:
    return value if _SLUG.fullmatch(value) else "other"


def status_class(status: int | None, outcome: str) -> str:
    """The `status` label of a KSeF request: the HTTP code when there is one (a few
    dozen at most), else what happened (`unavailable`: no answer at all)."""
    return str(status) if status is not None else outcome.lower()


class Metrics:
    """The families, their registry, and the scrape-time refresh callbacks."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self._refresh: list[tuple[str, Refresh]] = []
        self._children: dict[tuple[int, str], Any] = {}
        # Consumers outside Faust's (a stage's own record loop): (topic, partition) -> lag
        self.lag_sources: list[Callable[[], Mapping[tuple[str, str], float]]] = []
        # For the status page: what happened lately, not since the worker started.
        kw = {} if clock is None else {"clock": clock}
        self.recent_out = RecentCounts(60.0, 5.0, **kw)  # stage -> invoices, last minute
        self.recent_rejections = RecentCounts(3600.0, 60.0, **kw)  # (stage, reason), 1 h
        self._rejection_labels: set[tuple[str, str]] = set()
        # ---- flow ----
        self.stage_in = Counter(
            "ksef_stage_invoices_in", "Invoices a stage took from its input topic.",
            ["stage"], registry=r)
        self.stage_out = Counter(
            "ksef_stage_invoices_out", "Invoices a stage passed on to the next topic.",
            ["stage"], registry=r)
        self.rejections = Counter(
            "ksef_rejections", "Rejection records (ksef.invoices.rejected) by the stage "
            "that wrote them and their reason.", ["stage", "reason"], registry=r)
        self.outcomes = Counter(
            "ksef_outcomes", "Final records seen by the deadline tracker: accepted "
            "(in KSeF, ksef.invoices.outcomes) or rejected.", ["result"], registry=r)
        self.latency = Histogram(
            "ksef_invoice_latency_seconds", "From sealing (right after ingest) to the "
            "final record of an invoice.", buckets=LATENCY_BUCKETS, registry=r)
        self.records_produced = Counter(
            "ksef_records_produced", "Records this worker produced, by topic.", ["topic"],
            registry=r)
        self.consumer_lag = Gauge(
            "ksef_consumer_lag_records", "Records in a partition this worker has not "
            "consumed yet (high watermark minus position).", ["topic", "partition"],
            registry=r)
        # ---- deadlines ----
        self.pending = Gauge(
            "ksef_pending_invoices", "Invoices not yet in KSeF nor rejected, by invoicing "
            "mode and time left to their legal deadline (partitions of ksef.deadlines this "
            "worker owns).", ["mode", "bucket"], registry=r)
        self.at_risk = Gauge(
            "ksef_deadline_at_risk_invoices", "Pending invoices of sellers whose backlog "
            "will not be in KSeF by its deadline at the pace observed.", registry=r)
        # ---- KSeF ----
        self.requests = Counter(
            "ksef_api_requests", "KSeF API requests by seller context, endpoint group and "
            "answer.", ["context", "endpoint", "status"], registry=r)
        self.rate_limited = Counter(
            "ksef_api_rate_limited", "429 answers from KSeF by context and endpoint group.",
            ["context", "endpoint"], registry=r)
        self.headroom = Gauge(
            "ksef_api_rate_limit_headroom_ratio", "Share of the tightest request-limit "
            "window still free now (1 = unused, 0 = the next call waits).",
            ["context", "endpoint"], registry=r)
        self.sessions_open = Gauge(
            "ksef_batch_sessions_open", "Batch sessions this worker has open in KSeF.",
            registry=r)
        self.parts_uploaded = Counter(
            "ksef_batch_parts_uploaded", "Batch package parts uploaded to KSeF.", registry=r)
        self.upo_wait = Histogram(
            "ksef_upo_wait_seconds", "From a session's close to its UPO.",
            buckets=UPO_WAIT_BUCKETS, registry=r)
        self.spool_bytes = Gauge(
            "ksef_spool_bytes", "Bytes of encrypted batch packages in the spool.", registry=r)
        self.state = Gauge(
            "ksef_state", "The KSeF state the pipeline works by: 1 for the current one.",
            ["state"], registry=r)
        self.ksef_reachable = Gauge(
            "ksef_reachable", "1 while KSeF answers the pipeline's own requests.", registry=r)
        self.latarnia_reachable = Gauge(
            "ksef_latarnia_reachable", "1 while Latarnia (MF's status service) answers.",
            registry=r)
        # Unknown until the first `ksef.mode` record: NaN, so that "unreachable" (0)
        # alerts do not fire on a worker that has not read the state yet.
        self.ksef_reachable.set(float("nan"))
        self.latarnia_reachable.set(float("nan"))
        self.credential_expiry = Gauge(
            "ksef_credential_expiry_seconds", "Seconds until a seller context's credential "
            "expires (only credentials that carry an expiry).", ["context"], registry=r)
        self.recovery = Gauge(
            "ksef_table_recovery", "1 for the worker's table recovery state now.",
            ["state"], registry=r)

    # ---- counting (one call per event; also feeds the status page's recent views) ----
    # The labelled children are looked up once: `labels()` on every record showed in
    # the worker's profile.
    def count_in(self, stage: str, n: int = 1) -> None:
        self._child(self.stage_in, stage).inc(n)

    def count_out(self, stage: str, n: int = 1) -> None:
        self._child(self.stage_out, stage).inc(n)
        self.recent_out.add(stage, n)

    def produced(self, topic: str, n: int = 1) -> None:
        """Records this worker produced to `topic` (the catalog's name)."""
        self._child(self.records_produced, topic).inc(n)

    def _child(self, family: Counter, label: str) -> Any:
        key = (id(family), label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(label)
        return child

    def rejected(self, stage: str, reason: str) -> None:
        """A rejection record seen once (by the deadline tracker that settles it)."""
        labels = (_slug(stage), _slug(reason))
        if labels not in self._rejection_labels:
            if len(self._rejection_labels) >= MAX_REJECTION_LABELS:
                labels = ("other", "other")
            self._rejection_labels.add(labels)
        self.rejections.labels(*labels).inc()
        self.outcomes.labels("rejected").inc()
        self.recent_rejections.add(labels)

    def accepted(self) -> None:
        self.outcomes.labels("accepted").inc()

    # ---- scrape ----
    def on_scrape(self, name: str, refresh: Refresh) -> None:
        """Run `refresh(self)` before every scrape (it sets gauges from live state)."""
        self._refresh.append((name, refresh))

    def refresh(self) -> None:
        """Run the scrape-time callbacks, so the gauges describe the worker now (a scrape
        does this first; so does the status page). A failing callback is logged and
        leaves its gauges as they were."""
        for name, refresh in self._refresh:
            try:
                refresh(self)
            except Exception as exc:  # a scrape must never fail the worker
                log.warning("metrics refresh failed", source=name, error=str(exc))

    def exposition(self) -> bytes:
        """The text format of every family, after refreshing the gauges."""
        self.refresh()
        return generate_latest(self.registry)

    @staticmethod
    def read(gauge: Gauge) -> dict[tuple[str, ...], float]:
        """Label values (in the gauge's label order) -> value, for every series of
        `gauge` as last set; call `refresh()` first for the scrape-time ones."""
        out: dict[tuple[str, ...], float] = {}
        for family in gauge.collect():
            for sample in family.samples:
                out[tuple(sample.labels.values())] = sample.value
        return out

    # ---- helpers for labelled gauges that describe a whole set at once ----
    @staticmethod
    def set_all(gauge: Gauge, values: Mapping[Any, float],
                every: Iterable[tuple[str, ...]] = ()) -> None:
        """Replace every series of `gauge` with `values`; `every` label sets are
        published as 0 when absent (so a bucket that emptied reads 0, not stale)."""
        gauge.clear()
        for labels in every:
            gauge.labels(*labels).set(0)
        for labels, value in values.items():
            gauge.labels(*labels).set(value)

    def set_state(self, current: str | None) -> None:
        for state in KSEF_STATES:
            self.state.labels(state).set(1 if state == current else 0)
