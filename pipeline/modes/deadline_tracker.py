"""Deadline tracker: pending invoices -> `ksef.deadlines` (compacted) and `ksef.alerts`.

Flow, all keyed by invoice id so each invoice has one owner:
1. The validate stage, as it seals an invoice, puts its first record on
   `ksef.deadlines` (`computed_by: sealed`), keyed by invoice id: the owner of the
   partition it hashes to keeps the invoice.
2. Read from `ksef.deadlines`, those invoices join the `DeadlineBook` of the partition,
   and any record the current history disagrees with is corrected.
3. Read from `ksef.invoices.outcomes` / `.rejected`, settled invoices leave the book
   and their records are tombstoned.
   Those topics need not be partitioned like `ksef.deadlines` (any producer, any
   partitioner): an invoice not held here gets its tombstone anyway when another worker
   may hold it, and the owner applies tombstones it reads on `ksef.deadlines`.
4. On every change of the legal announcements in `ksef.mode`, the book recomputes its
   groups (issue date, mode), and the loop's next turn sends one record per member of
   each group whose deadline changed, earliest deadline first. Nothing else is sent.

State: no Faust table. `ksef.deadlines` is itself the changelog of the book: when a
partition is assigned, its compacted contents are read back (group-less, in a thread)
before any record of that partition is handled, and records the current history
disagrees with are corrected. So the pending state costs one record per invoice and
no second copy, and survives restarts and rebalances like a table would.

The tracker is a record loop (`pipeline.runtime.record_loop`), not Faust agents: it
reads three records per invoice (its first deadline record, the tombstone read back,
the outcome), and Faust's per-event plumbing cost more than the book's work on them
(docs/performance.md, session 13). One consumer in the group `<app id>-deadlines` reads
the three topics; everything it produces (corrections, tombstones, recomputed
deadlines) goes through the loop's one producer, in order, delivered before the
records that caused it are committed.

Alerts (timer KSEF_DEADLINE_CHECK_S, default 60 s): deadlines passed, and backlogs that
cannot be in KSeF in time at the current pace (`risk`). Each alert id is raised once
per worker run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import faust

from pipeline.clock import iso, now_utc
from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.ksef.modes import Mode
from pipeline.metrics import DEADLINE_BUCKETS, Metrics, deadline_bucket
from pipeline.modes import alerts
from pipeline.modes.follow import ModeFollower, mode_follower
from pipeline.modes.pending import SEALED, Change, DeadlineBook, parse_moment
from pipeline.modes.publish import publish_alert
from pipeline.modes.risk import PaceMeter, RiskSettings, assess, end_of_day, pace
from pipeline.modes.snapshot import ANNOUNCED_STATES, history_of, legal_content
from pipeline.runtime import logs
from pipeline.runtime.record_loop import LoopOutput, Partitions, RecordLoop, loop_service
from pipeline.runtime.settings import DeadlineSettings, KafkaSettings
from pipeline.runtime.topic_reads import read_latest
from topics import CatalogSettings, topic_name
from topics.catalog import DEADLINES, OUTCOMES, REJECTED
from topics.codec import decode
from topics.records import DeadlineRecord, InvoiceOutcome, ModeState, Rejection

log = logs.get(__name__)

SEALED_MARK = b'"computed_by":"sealed"'
PUBLISH_SLICE = 5_000  # recomputed records produced per turn of the loop, at most


@dataclass
class DeadlineTracker:
    """The pending invoices of this worker's `ksef.deadlines` partitions, and what it
    does with the records of the three topics it reads (one object per worker)."""

    settings: DeadlineSettings
    kafka: KafkaSettings
    catalog: CatalogSettings
    metrics: Metrics
    follower: ModeFollower
    partitions: int  # of `ksef.deadlines`
    book: DeadlineBook = field(default_factory=DeadlineBook)
    meter: PaceMeter = field(default_factory=PaceMeter)
    raised: set[str] = field(default_factory=set)  # alert ids, once per worker run
    # partition -> the end offset its load read up to (records below it are in the book)
    loaded: dict[int, int] = field(default_factory=dict)
    legal_seen: Any = None  # the legal content of `ksef.mode` last applied
    recomputed: bool = False  # groups may be dirty: publish on the loop's next turn

    def __post_init__(self) -> None:
        self.risk = RiskSettings.build(self.settings)
        self.deadlines_name = topic_name(DEADLINES, self.catalog)
        self.outcomes_name = topic_name(OUTCOMES, self.catalog)
        self.rejected_name = topic_name(REJECTED, self.catalog)

    # -- the loop's hooks ------------------------------------------------------------

    async def rebalanced(self, assigned: Partitions, revoked: Partitions,
                         out: LoopOutput) -> None:
        """Drop the partitions gone; load the new ones before any of their records."""
        gone = [p for t, p in revoked if t == self.deadlines_name]
        for partition in gone:
            self.loaded.pop(partition, None)
            self.book.drop(partition)
        mine = [p for t, p in assigned if t == self.deadlines_name]
        if gone or mine:
            log.info("ksef.deadlines partitions assigned",
                     partitions=sorted({*self.loaded, *mine}), dropped=sorted(gone))
        if mine:
            await self.follower.wait_ready()  # deadlines from the real history
            loads = await asyncio.gather(*(asyncio.to_thread(
                read_latest, self.kafka, self.deadlines_name, [p]) for p in mine))
            for partition, snapshot in zip(mine, loads, strict=True):
                self._load(partition, snapshot.live().values(),
                           snapshot.ends.get(partition, 0), out)

    def _load(self, partition: int, values: Any, end: int, out: LoopOutput) -> None:
        records = []
        for raw in values:
            try:
                records.append(decode(DeadlineRecord, raw))
            except (ValueError, TypeError) as exc:
                log.error("unreadable ksef.deadlines record skipped", error=str(exc))
        changes = self.book.load(partition, records, now_utc())
        self.loaded[partition] = end
        log.info("pending invoices loaded", partition=partition, invoices=len(records),
                 corrections=len(changes))
        self._send(changes, out)

    def handle(self, messages: list[Any], out: LoopOutput) -> None:
        """One polled batch of the three topics."""
        for msg in messages:
            topic = msg.topic()
            if topic == self.deadlines_name:
                self._deadline(msg, out)
            elif topic == self.outcomes_name:
                self._settle(msg.value(), InvoiceOutcome, out)
            elif topic == self.rejected_name:
                self._settle(msg.value(), Rejection, out)

    async def between(self, out: LoopOutput) -> None:
        """Recomputed deadlines (an announcement changed), then the alerts they make."""
        if not self.recomputed:
            return
        self.recomputed = self.publish_changed(out) >= PUBLISH_SLICE
        if not self.recomputed:
            await self.check_deadlines()

    # -- records ---------------------------------------------------------------------

    def _deadline(self, msg: Any, out: LoopOutput) -> None:
        value, partition = msg.value(), msg.partition()
        if value is not None and SEALED_MARK not in value:
            return  # the tracker's own records: already applied
        end = self.loaded.get(partition)
        if end is None or msg.offset() < end:
            return  # not ours, or in the book since its load
        now = now_utc()
        if value is None:  # ours (applied already) or forwarded by another worker
            invoice_id = (msg.key() or b"").decode()
            self._observe_latency(self.book.pending_since(invoice_id), now)
            self.book.forget(partition, invoice_id, now)
            return
        try:
            record = decode(DeadlineRecord, value)
        except (ValueError, TypeError) as exc:
            log.error("unreadable ksef.deadlines record", offset=msg.offset(),
                      error=str(exc))
            return
        if record.computed_by == SEALED:
            self._send(self.book.add(partition, record, now), out)

    def _settle(self, value: bytes | None,
                record: type[InvoiceOutcome] | type[Rejection], out: LoopOutput) -> None:
        """Forget a settled invoice (an outcome or a rejection) and tombstone it."""
        try:
            settled = decode(record, value or b"")
        except (ValueError, TypeError):
            return  # not ours to judge: the stage that wrote it reports its own junk
        now = now_utc()
        if isinstance(settled, InvoiceOutcome):
            self.meter.accepted(settled.seller_nip, now)
            self.metrics.accepted()
            at = settled.recorded_at
        else:
            self.metrics.rejected(settled.stage, settled.reason)
            at = settled.rejected_at
        moment = parse_moment(at) or now
        self._observe_latency(self.book.pending_since(settled.invoice_id), moment)
        forward = len(self.loaded) < self.partitions
        self._send(self.book.settle(settled.invoice_id, moment, forward=forward), out)

    def _observe_latency(self, sealed_at: dt.datetime | None, final_at: dt.datetime) -> None:
        """Sealing to final record, once per invoice: by the worker that holds it, when it
        settles it itself or when another worker's tombstone reaches it."""
        if sealed_at is not None:
            self.metrics.latency.observe(max(0.0, (final_at - sealed_at).total_seconds()))

    def _send(self, changes: list[Change], out: LoopOutput) -> None:
        for change in changes:
            out.produce(DEADLINES, change.invoice_id.encode(), change.value)

    # -- announcements ---------------------------------------------------------------

    def on_mode(self, state: ModeState) -> None:
        """A new `ksef.mode` record: recompute the groups if its legal content changed
        (the records go out on the loop's next turn)."""
        legal = legal_content(state)
        if legal == self.legal_seen:
            return
        self.legal_seen = legal
        history: AnnouncementHistory = history_of(legal)
        dirty = self.book.set_history(history)
        self.recomputed = True
        log.info("deadlines recomputed", windows=len(history), pending=len(self.book),
                 changed_groups=len(dirty))

    def publish_changed(self, out: LoopOutput) -> int:
        """Send every member of dirty groups, earliest new deadline first, up to about
        `PUBLISH_SLICE` records a turn (a group goes whole); the rest on the next turns."""
        sent = 0
        dirty = sorted(self.book.dirty_groups(),
                       key=lambda g: (g.deadline.due is None, g.deadline.due or g.issue_date))
        for group in dirty:
            if sent >= PUBLISH_SLICE:
                break
            target = group.deadline
            for invoice_id, value in group.records(target, iso()):
                out.produce(DEADLINES, invoice_id.encode(), value)
                sent += 1
            group.published = target
        if sent:
            log.info("recomputed deadlines published", records=sent)
        return sent

    # -- alerts and metrics ----------------------------------------------------------

    def pending_by_bucket(self, now: dt.datetime) -> dict[tuple[str, str], int]:
        """(mode, deadline bucket) -> pending invoices of the partitions held here."""
        out: dict[tuple[str, str], int] = {}
        for group in self.book.groups():
            d = group.deadline
            due = None if d.due is None else end_of_day(d.due)
            key = (d.mode.value, deadline_bucket(d.status.value, due, now))
            out[key] = out.get(key, 0) + len(group.members)
        return out

    def refresh_pending(self, m: Metrics) -> None:
        counts = self.pending_by_bucket(now_utc())
        # every (mode, bucket) pair, 0 when empty: a bucket that emptied must read 0
        m.set_all(m.pending, counts,
                  [(kind.value, b) for kind in Mode for b in DEADLINE_BUCKETS])

    async def check_deadlines(self) -> None:
        """Raise an alert for each newly passed or at-risk deadline."""
        if not self.loaded:
            return
        now = now_utc()
        state = self.follower.state
        reachable = state is None or (state.ksef_reachable
                                      and state.state not in ANNOUNCED_STATES)
        due = self.book.due_by_seller()
        share = len(self.loaded) / max(1, self.partitions)
        speeds = pace(list(due), self.meter.per_hour(now), reachable,
                      self.risk.nominal_per_hour, share)
        risks = assess(due, now, speeds, self.risk)
        self.metrics.at_risk.set(sum(r.count for r in risks if r.kind == "deadline-at-risk"))
        for risk in risks:
            if risk.alert_id in self.raised:
                continue
            self.raised.add(risk.alert_id)
            alert = alerts.for_risk(risk, now, self.book.sample(risk.seller_nip, risk.due))
            log.warning("deadline alert", kind=alert.kind, seller_nip=risk.seller_nip,
                        deadline=str(risk.due), invoices=risk.backlog)
            await publish_alert(alert)


@cache
def deadline_tracker() -> DeadlineTracker:
    """This worker's tracker (built from the settings on the first call; no Kafka
    client is made here)."""
    from pipeline.runtime.app import catalog_settings, kafka_settings, metrics

    return DeadlineTracker(DeadlineSettings.from_env(), kafka_settings, catalog_settings,
                           metrics, mode_follower(),
                           DEADLINES.partition_count(catalog_settings))


def install(app: faust.App) -> DeadlineTracker:
    """Run the tracker in this worker: its loop starts with the app and stops with it;
    its alert check runs on a timer (KSEF_DEADLINE_CHECK_S)."""
    from pipeline.runtime.app import worker_settings

    tracker = deadline_tracker()
    tracker.follower.subscribe(tracker.on_mode)
    tracker.metrics.on_scrape("deadlines", tracker.refresh_pending)
    loop = RecordLoop(
        name="deadlines", source=[DEADLINES, OUTCOMES, REJECTED],
        group=f"{app.conf.id}-deadlines", handle=tracker.handle, kafka=tracker.kafka,
        catalog=tracker.catalog, worker=worker_settings, seed_from_group=app.conf.id,
        on_produced=tracker.metrics.produced, on_rebalance=tracker.rebalanced,
        between=tracker.between)
    tracker.metrics.lag_sources.append(loop.lag)  # in ksef_consumer_lag like Faust's

    app.service(loop_service(loop, "DeadlineTrackerService", worker_settings.stop_deadline_s))

    async def deadline_check() -> None:
        await tracker.check_deadlines()

    app.timer(tracker.settings.check_s, name="deadline-check")(deadline_check)
    return tracker
