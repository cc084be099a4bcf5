"""validate+seal stage: `ksef.invoices.submitted` -> `ksef.invoices.sealed` | `.rejected`.

One hop: every stateless KSeF pre-check (one lxml parse + XSD validation), then at once
the seal: issuing mode and deadline stamped from the mode-state stream, QR links, and
the exact invoice bytes deflated and AES-256-GCM encrypted under the keyring's active
key. The invoice's first `ksef.deadlines` record goes out with it, so the deadline
tracker never reads the sealed topic. The output is keyed by seller NIP, so the pack
stage that owns a seller's partition also owns its invoice numbers (the duplicate
check). After `.submitted` no topic holds plaintext, and no invoice travels as base64
or JSON.

The stage keeps no state, so it runs as a thin consumer loop on a thread of its own
(`pipeline.runtime.record_loop`: a batch polled, handled, delivered, committed), not as
a Faust agent: Faust's per-event plumbing cost more CPU than the work itself.

Any failure of one record becomes a rejection; the loop itself never dies on input.
Every input field is bounded before anything is produced (`check_submission`), and an
output a topic could never take (`RecordTooLarge`, or the broker's own refusal at
delivery) becomes a bounded rejection instead, or, if even that cannot be written, an
alert on `ksef.alerts` (the record is parked: committed past, never retried), so one
record can never stop or crash-loop the worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import faust

from pipeline.clock import from_timestamp, iso, now_utc, polish_today
from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.metrics import Metrics
from pipeline.modes.follow import mode_follower
from pipeline.modes.pending import first_record
from pipeline.modes.snapshot import history_from_mode_state
from pipeline.runtime import logs
from pipeline.runtime.keyring_file import KeyringSource, keyring_source
from pipeline.runtime.record_loop import RecordLoop, RefusedForGood, loop_service
from pipeline.runtime.settings import ValidateSealSettings
from pipeline.stages.s1_validate_seal.sealing import SealConfig, SealedOutput, seal_invoice
from pipeline.stages.s1_validate_seal.submission import (
    STAGE,
    AttachmentPolicy,
    Submission,
    check_submission,
    reject,
)
from topics.catalog import (
    ALERTS,
    DEADLINES,
    REJECTED,
    SEALED,
    SUBMITTED,
    RecordTooLarge,
    TopicSpec,
    check_record_size,
)
from topics.codec import encode
from topics.records import Alert, KafkaRef, ModeState, Rejection
from topics.rejections import build_rejection, cut

log = logs.get(__name__)

READY_WAIT_S = 30.0


class Output(Protocol):
    """Where the stage's records go (`pipeline.runtime.record_loop.LoopOutput`)."""

    def produce(self, spec: TopicSpec, key: bytes, value: bytes | None,
                refused: Callable[[BaseException], None] | None = None) -> None: ...


class ValidateSeal:
    """The stage's state: the checker, the seal settings with the keyring as it is now,
    and what this worker knows of KSeF's state (the mode-state stream keeps it current)."""

    def __init__(self, settings: ValidateSealSettings, keyrings: KeyringSource,
                 metrics: Metrics | None = None) -> None:
        self.checker = InvoiceChecker()
        self.policy = AttachmentPolicy.parse(settings.attachment_sellers)
        self.keyrings = keyrings  # re-read on change: a rotation needs no restart
        self.config = SealConfig.build(keyrings.get(), settings)
        self.history = AnnouncementHistory()
        self.ksef_reachable = True
        self.metrics = metrics

    def apply_mode(self, state: ModeState) -> None:
        self.history = history_from_mode_state(state)
        self.ksef_reachable = state.ksef_reachable

    def _config(self) -> SealConfig:
        """The seal settings with the keyring as it is now (the active key may rotate)."""
        ring = self.keyrings.get()
        if ring is not self.config.keyring:
            self.config = dataclasses.replace(self.config, keyring=ring)
        return self.config

    def validate_and_seal(self, sub: Submission) -> SealedOutput | Rejection:
        """The sealed invoice or the rejection; a bug costs one record, not the stage."""
        try:
            checked = check_submission(sub, self.checker, polish_today(), self.policy)
        except Exception as exc:  # never lose a record to a bug
            return reject(sub, "unknown", f"validate stage failed: {type(exc).__name__}")
        if isinstance(checked, Rejection):
            return checked
        try:
            return seal_invoice(checked, self._config(), self.history,
                                ksef_reachable=self.ksef_reachable)
        except Exception as exc:
            return build_rejection(invoice_id=checked.invoice_id, stage="seal", code=500,
                                   reason="unknown", rejected_at=iso(), origin=checked.origin,
                                   received_at=checked.received_at,
                                   seller_nip=checked.seller_nip,
                                   message=f"seal failed: {type(exc).__name__}")

    def handle(self, messages: list[Any], out: Output) -> None:
        """One polled batch: every record sealed or rejected (the loop then delivers and
        commits)."""
        if self.metrics is not None:
            self.metrics.count_in(STAGE, len(messages))
        sealed = 0
        for msg in messages:
            sub = submission(msg)
            sealed += emit(out, sub, self.validate_and_seal(sub))
        if self.metrics is not None and sealed:
            self.metrics.count_out(STAGE, sealed)


def submission(msg: Any) -> Submission:
    """A librdkafka message of `ksef.invoices.submitted` as the stage's input."""
    headers = {k: bytes(v or b"") for k, v in (msg.headers() or [])}
    _kind, at_ms = msg.timestamp()
    return Submission(
        key=msg.key(), value=msg.value(), headers=headers,
        origin=KafkaRef(msg.topic(), msg.partition(), msg.offset()),
        received_at=iso(from_timestamp(at_ms / 1000 if at_ms and at_ms > 0 else None)),
    )


# Refused for good: the same record fails again after any retry or restart. Our own
# catalog check before sending, or the broker's refusal reported at delivery.
PERMANENT = (RecordTooLarge, RefusedForGood)


def emit(out: Output, sub: Submission, result: SealedOutput | Rejection) -> int:
    """Produce the record's output; one a topic cannot take becomes a rejection, and a
    rejection that cannot be written an alert: the stage goes on in every case.

    Refused before sending (`RecordTooLarge`), that happens here; refused by the broker
    (a topic configured below the catalog), before the commit (the fallback given to
    `produce`). 1 when the invoice was sealed, else 0."""
    try:
        if isinstance(result, Rejection):
            _produce_rejection(out, sub, result)
            return 0
        # The deadline tracker learns of the invoice from its first deadline record,
        # keyed by invoice id (the partition that tracks it), not from the sealed topic.
        # Both records fit their topics or neither is produced.
        first = encode(first_record(result.meta, result.deadline, now_utc()))
        invoice_key = result.meta.invoice_id.encode()
        check_record_size(DEADLINES, invoice_key, first)

        def sealed_refused(error: BaseException) -> None:
            _reject_instead(out, sub, error)

        def deadline_refused(error: BaseException) -> None:
            _park(out, sub, error, "its first ksef.deadlines record could not be "
                  "written (the invoice itself was sealed)")

        out.produce(SEALED, result.meta.seller_nip.encode(), result.value, sealed_refused)
        out.produce(DEADLINES, invoice_key, first, deadline_refused)
        return 1
    except PERMANENT as exc:
        failure: BaseException = exc
    _reject_instead(out, sub, failure)
    return 0


def _reject_instead(out: Output, sub: Submission, failure: BaseException) -> None:
    log.warning("output refused for good; rejecting the record instead",
                origin=str(sub.origin), error=cut(str(failure), 300))
    rejection = reject(sub, "too-large", f"its output cannot be written: {failure}",
                       details={"error": type(failure).__name__})
    try:
        _produce_rejection(out, sub, rejection)
        return
    except PERMANENT as exc:
        failure = exc
    _park(out, sub, failure)


def _produce_rejection(out: Output, sub: Submission, rejection: Rejection) -> None:
    log.info("rejected", invoice_id=rejection.invoice_id, reason=rejection.reason,
             code=rejection.code)

    def refused(error: BaseException) -> None:
        _park(out, sub, error)

    out.produce(REJECTED, rejection.invoice_id.encode(), encode(rejection), refused)


def _park(out: Output, sub: Submission, failure: BaseException,
          what: str = "neither its output nor a rejection could be written") -> None:
    """Not even a rejection fits: say so on ksef.alerts and go past the record."""
    ref = sub.origin
    invoice_id = cut(sub.invoice_id() or "", 256) or None
    alert = Alert(
        alert_id=f"record-parked:{ref.topic}/{ref.partition}/{ref.offset}",
        kind="record-parked", severity="critical", at=iso(), invoice_id=invoice_id,
        message=(f"record {ref.topic}/{ref.partition}/{ref.offset} was skipped: {what} "
                 f"({cut(str(failure), 300)}); read it from the topic and resubmit it fixed"),
        details={"topic": ref.topic, "partition": ref.partition, "offset": ref.offset,
                 "error": type(failure).__name__})
    log.error("record parked", origin=str(ref), error=cut(str(failure), 300))

    def lost(error: BaseException) -> None:
        log.error("record parked without an alert", origin=str(ref),
                  error=cut(str(error), 300))

    try:
        out.produce(ALERTS, alert.alert_id.encode(), encode(alert), lost)
    except PERMANENT:
        log.error("record parked without an alert", origin=str(ref))


def install(app: faust.App) -> None:
    """Run the stage in this worker: its loop starts with the app, stops with it."""
    from pipeline.runtime.app import catalog_settings, kafka_settings, metrics, worker_settings

    settings = ValidateSealSettings.from_env()
    stage = ValidateSeal(settings, keyring_source(), metrics)
    follower = mode_follower()
    follower.subscribe(stage.apply_mode)

    loop = RecordLoop(
        name=STAGE, source=SUBMITTED, group=f"{app.conf.id}-validate-seal",
        handle=stage.handle, kafka=kafka_settings, catalog=catalog_settings,
        worker=worker_settings, seed_from_group=app.conf.id, batch=settings.batch,
        on_produced=metrics.produced)
    metrics.lag_sources.append(loop.lag)

    async def prepare() -> None:
        stage.checker.warm_up()
        try:  # stamp modes from the real state, not from "nothing announced"
            await asyncio.wait_for(follower.wait_ready(), READY_WAIT_S)
        except TimeoutError:
            log.warning("ksef.mode not read yet; sealing with no announcements known")

    app.service(loop_service(loop, "ValidateSealService", worker_settings.stop_deadline_s,
                             prepare))
