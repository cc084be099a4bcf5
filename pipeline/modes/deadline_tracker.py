"""Deadline tracker: pending invoices -> `ksef.deadlines` (compacted) and `ksef.alerts`.

Flow, all keyed by invoice id so each invoice has one owner:
1. The validate stage, as it seals an invoice, puts its first record on
   `ksef.deadlines` (`computed_by: sealed`), keyed by invoice id: the owner of the
   partition it hashes to keeps the invoice.
2. `mode-deadlines` (on `ksef.deadlines`) adds those invoices to the `DeadlineBook` of
   the partition and corrects any record the current history disagrees with.
3. `mode-outcomes` / `mode-rejected` remove settled invoices and publish tombstones.
   Those topics need not be partitioned like `ksef.deadlines` (any producer, any
   partitioner): an invoice not held here gets its tombstone anyway when another worker
   may hold it, and the owner applies tombstones it reads on `ksef.deadlines`.
4. On every change of the legal announcements in `ksef.mode`, the book recomputes its
   groups (issue date, mode) and the publisher sends one record per member of each
   group whose deadline changed, earliest deadline first. Nothing else is sent.

State: no Faust table. `ksef.deadlines` is itself the changelog of the book: when a
partition is assigned, its compacted contents are read back (group-less, in a thread)
before any event of that partition is handled, and records the current history
disagrees with are corrected. So the pending state costs one record per invoice and
no second copy, and survives restarts and rebalances like a table would.

Alerts (timer KSEF_DEADLINE_CHECK_S, default 60 s): deadlines passed, and backlogs that
cannot be in KSeF in time at the current pace (`risk`). Each alert id is raised once
per worker run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import faust

from pipeline.clock import iso, now_utc
from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.ksef.modes import Mode
from pipeline.metrics import DEADLINE_BUCKETS, Metrics, deadline_bucket
from pipeline.modes import alerts
from pipeline.modes.follow import mode_follower
from pipeline.modes.pending import SEALED, Change, DeadlineBook, parse_moment
from pipeline.modes.publish import publish_alert
from pipeline.modes.risk import PaceMeter, RiskSettings, assess, end_of_day, pace
from pipeline.modes.snapshot import ANNOUNCED_STATES, history_of, legal_content
from pipeline.runtime import logs
from pipeline.runtime.app import app, catalog_settings, kafka_settings, metrics, topic
from pipeline.runtime.settings import DeadlineSettings
from pipeline.runtime.topic_reads import read_latest
from topics import topic_name
from topics.catalog import DEADLINES, OUTCOMES, REJECTED
from topics.codec import decode
from topics.records import DeadlineRecord, InvoiceOutcome, ModeState, Rejection

log = logs.get(__name__)

deadline_settings = DeadlineSettings.from_env()
CHECK_S = deadline_settings.check_s
SEALED_MARK = b'"computed_by":"sealed"'

outcomes_topic = topic(OUTCOMES)
rejected_topic = topic(REJECTED)
deadlines_topic = topic(DEADLINES)
deadlines_name = topic_name(DEADLINES, catalog_settings)

follower = mode_follower()
book = DeadlineBook()
meter = PaceMeter()
risk_settings = RiskSettings.build(deadline_settings)
raised: set[str] = set()


class PartitionGate:
    """Which `ksef.deadlines` partitions are loaded; events wait for theirs."""

    def __init__(self) -> None:
        self.loaded: dict[int, int] = {}  # partition -> offset the load read up to
        self.assigned: set[int] = set()
        self._changed = asyncio.Condition()

    async def wait(self, partition: int) -> bool:
        """True once `partition` is loaded; False if it is not (or no longer) ours."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: partition in self.loaded or partition not in self.assigned)
        return partition in self.loaded

    async def wait_all(self) -> None:
        """Until every assigned partition is loaded."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.assigned <= set(self.loaded))

    async def update(self, assigned: set[int]) -> None:
        async with self._changed:
            self.assigned = assigned
            for partition in list(self.loaded):
                if partition not in assigned:
                    del self.loaded[partition]
                    book.drop(partition)
            self._changed.notify_all()

    async def mark_loaded(self, partition: int, end: int) -> None:
        async with self._changed:
            self.loaded[partition] = end
            self._changed.notify_all()


gate = PartitionGate()
wake_publisher = asyncio.Event()
_loading: dict[int, asyncio.Task[None]] = {}


async def _produce(invoice_id: str, value: bytes | None) -> None:
    """Hand one record to the producer (the app's aiokafka producer directly: an order of
    magnitude cheaper per record than `Topic.send`, same partitioner, same ordering)."""
    await app.producer.send(deadlines_name, invoice_id.encode(), value, None, None, None)


async def _send(changes: list[Change]) -> None:
    for change in changes:
        await _produce(change.invoice_id, change.value)


async def _load(partition: int) -> None:
    """Rebuild one partition of the book; retried until it works or is no longer ours
    (every event of the partition waits for it)."""
    await follower.wait_ready()
    while partition in gate.assigned:
        try:
            await _load_once(partition)
            return
        except Exception:
            log.exception("loading pending invoices failed; retrying", partition=partition)
            await asyncio.sleep(2.0)


async def _load_once(partition: int) -> None:
    snapshot = await asyncio.to_thread(read_latest, kafka_settings, deadlines_name, [partition])
    records = []
    for raw in snapshot.live().values():
        try:
            records.append(decode(DeadlineRecord, raw))
        except (ValueError, TypeError) as exc:
            log.error("unreadable ksef.deadlines record skipped", error=str(exc))
    if partition not in gate.assigned:
        return
    changes = book.load(partition, records, now_utc())
    await gate.mark_loaded(partition, snapshot.ends.get(partition, 0))
    log.info("pending invoices loaded", partition=partition, invoices=len(records),
             corrections=len(changes))
    await _send(changes)


@app.on_partitions_assigned.connect
async def _on_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
    mine = {tp.partition for tp in assigned if tp.topic == deadlines_name}
    log.info("ksef.deadlines partitions assigned", partitions=sorted(mine),
             dropped=sorted(set(gate.loaded) - mine))
    await gate.update(mine)
    for partition in mine:
        task = _loading.get(partition)
        if partition not in gate.loaded and (task is None or task.done()):
            _loading[partition] = asyncio.ensure_future(_load(partition))


async def _on_mode(state: ModeState) -> None:
    legal = legal_content(state)
    if legal == legal_content_seen["last"]:
        return
    legal_content_seen["last"] = legal
    history: AnnouncementHistory = history_of(legal)
    dirty = book.set_history(history)
    log.info("deadlines recomputed", windows=len(history), pending=len(book),
             changed_groups=len(dirty))
    wake_publisher.set()


legal_content_seen: dict[str, Any] = {"last": None}
follower.subscribe(_on_mode)


async def publish_changed() -> int:
    """Send every member of every dirty group, earliest new deadline first."""
    sent = 0
    while True:
        dirty = sorted(book.dirty_groups(),
                       key=lambda g: (g.deadline.due is None, g.deadline.due or g.issue_date))
        if not dirty:
            return sent
        for group in dirty:
            target = group.deadline
            if not group.dirty:
                continue
            for invoice_id, value in group.records(target, iso()):
                if not book.holds(group):
                    break  # its partition went to another worker, which reloads it
                await _produce(invoice_id, value)
                sent += 1
            group.published = target


@app.task
async def deadline_publisher() -> None:
    while True:
        await wake_publisher.wait()
        wake_publisher.clear()
        try:
            sent = await publish_changed()
        except Exception:
            log.exception("publishing recomputed deadlines failed; retrying")
            await asyncio.sleep(1.0)
            wake_publisher.set()
            continue
        if sent:
            log.info("recomputed deadlines published", records=sent)
        await check_deadlines()


# Agents take one event at a time: Faust's take_events acknowledges a whole batch in a
# `finally` even when the agent is cancelled before handling it (see the validate stage).
@app.agent(deadlines_topic, name="mode-deadlines")
async def track_new(stream: faust.StreamT[Any]) -> None:
    async for event in stream.events():
        now = now_utc()
        value, partition = event.value, event.message.partition
        if value is not None and SEALED_MARK not in value:
            continue  # the tracker's own records: already applied
        if not await gate.wait(partition) or event.message.offset < gate.loaded[partition]:
            continue
        if value is None:  # ours (applied already) or forwarded by another worker
            invoice_id = (event.message.key or b"").decode()
            _observe_latency(book.pending_since(invoice_id), now)  # forwarded: still held
            book.forget(partition, invoice_id, now)
            continue
        try:
            record = decode(DeadlineRecord, value)
        except (ValueError, TypeError) as exc:
            log.error("unreadable ksef.deadlines record", offset=event.message.offset,
                      error=str(exc))
            continue
        if record.computed_by == SEALED:
            await _send(book.add(partition, record, now))


def _observe_latency(sealed_at: dt.datetime | None, final_at: dt.datetime) -> None:
    """Sealing to final record, once per invoice: by the worker that holds it, when it
    settles it itself or when another worker's tombstone reaches it."""
    if sealed_at is not None:
        metrics.latency.observe(max(0.0, (final_at - sealed_at).total_seconds()))


async def _settle(value: bytes, record: type[InvoiceOutcome] | type[Rejection]) -> None:
    """Forget a settled invoice (an outcome or a rejection) and tombstone it."""
    await gate.wait_all()
    now = now_utc()
    try:
        settled = decode(record, value)
    except (ValueError, TypeError):
        return  # not ours to judge: the stage that wrote it reports its own junk
    if isinstance(settled, InvoiceOutcome):
        meter.accepted(settled.seller_nip, now)
        metrics.accepted()
        at = settled.recorded_at
    else:
        metrics.rejected(settled.stage, settled.reason)
        at = settled.rejected_at
    moment = parse_moment(at) or now
    _observe_latency(book.pending_since(settled.invoice_id), moment)
    forward = len(gate.loaded) < (deadlines_topic.partitions or 1)
    await _send(book.settle(settled.invoice_id, moment, forward=forward))


@app.agent(outcomes_topic, name="mode-outcomes")
async def track_outcomes(stream: faust.StreamT[Any]) -> None:
    async for event in stream.events():
        await _settle(event.value, InvoiceOutcome)


@app.agent(rejected_topic, name="mode-rejected")
async def track_rejected(stream: faust.StreamT[Any]) -> None:
    async for event in stream.events():
        await _settle(event.value, Rejection)


def pending_by_bucket(now: dt.datetime) -> dict[tuple[str, str], int]:
    """(mode, deadline bucket) -> pending invoices of the partitions held here."""
    out: dict[tuple[str, str], int] = {}
    for group in book.groups():
        d = group.deadline
        due = None if d.due is None else end_of_day(d.due)
        key = (d.mode.value, deadline_bucket(d.status.value, due, now))
        out[key] = out.get(key, 0) + len(group.members)
    return out


def _refresh_pending(m: Metrics) -> None:
    counts = pending_by_bucket(now_utc())
    # every (mode, bucket) pair, 0 when empty: a bucket that emptied must read 0
    m.set_all(m.pending, counts, [(mode.value, b) for mode in Mode for b in DEADLINE_BUCKETS])


metrics.on_scrape("deadlines", _refresh_pending)


async def check_deadlines() -> None:
    """Raise an alert for each newly passed or at-risk deadline."""
    if not gate.loaded:
        return
    now = now_utc()
    state = follower.state
    reachable = state is None or (state.ksef_reachable and state.state not in ANNOUNCED_STATES)
    due = book.due_by_seller()
    share = len(gate.loaded) / max(1, deadlines_topic.partitions or 1)
    speeds = pace(list(due), meter.per_hour(now), reachable, risk_settings.nominal_per_hour,
                  share)
    risks = assess(due, now, speeds, risk_settings)
    metrics.at_risk.set(sum(r.count for r in risks if r.kind == "deadline-at-risk"))
    for risk in risks:
        if risk.alert_id in raised:
            continue
        raised.add(risk.alert_id)
        alert = alerts.for_risk(risk, now, book.sample(risk.seller_nip, risk.due))
        log.warning("deadline alert", kind=alert.kind, seller_nip=risk.seller_nip,
                    deadline=str(risk.due), invoices=risk.backlog)
        await publish_alert(alert)


@app.timer(CHECK_S, name="deadline-check")
async def deadline_check() -> None:
    await check_deadlines()
