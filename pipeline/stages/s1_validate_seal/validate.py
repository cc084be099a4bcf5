"""validate+seal stage: `ksef.invoices.submitted` -> `ksef.invoices.sealed` | `.rejected`.

One agent, one hop: every stateless KSeF pre-check (one lxml parse + XSD validation),
then at once the seal: issuing mode and deadline stamped from the mode-state stream,
QR links, and the exact invoice bytes deflated and AES-256-GCM encrypted under the
keyring's active key. The invoice's first `ksef.deadlines` record goes out with it, so
the deadline tracker never reads the sealed topic. The output is keyed by seller NIP,
so the pack stage that owns a seller's partition also owns its invoice numbers (the
duplicate check). After
`.submitted` no topic holds plaintext, and no invoice travels as base64 or JSON.

Any failure of one record becomes a rejection; the agent itself never dies on input.
Every input field is bounded before anything is produced (`check_submission`), and an
output a topic could never take (`RecordTooLarge`) becomes a bounded rejection instead,
or, if even that cannot be written, an alert on `ksef.alerts` (the record is parked:
committed past, never retried), so one record can never stop or crash-loop the worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import faust
from aiokafka.errors import (  # type: ignore[import-untyped]
    MessageSizeTooLargeError,
    RecordTooLargeError,
)

from pipeline.clock import from_timestamp, iso, now_utc, polish_today
from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.modes.follow import mode_follower
from pipeline.modes.pending import first_record
from pipeline.modes.snapshot import history_from_mode_state
from pipeline.runtime import logs
from pipeline.runtime.app import app, in_flight, metrics, produce, topic
from pipeline.runtime.keyring_file import keyring_source
from pipeline.runtime.replay_guard import ReplayGuard
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
    check_record_size,
)
from topics.codec import encode
from topics.records import Alert, KafkaRef, ModeState, Rejection
from topics.rejections import build_rejection, cut

log = logs.get(__name__)

submitted_topic = topic(SUBMITTED)

checker = InvoiceChecker()
guard = ReplayGuard(in_flight)
stage_settings = ValidateSealSettings.from_env()
policy = AttachmentPolicy.parse(stage_settings.attachment_sellers)
keyrings = keyring_source()  # re-read on change: a rotation needs no restart
config = SealConfig.build(keyrings.get(), stage_settings)
READY_WAIT_S = 30.0


class ModeView:
    """What this worker knows of KSeF's state; the mode-state stream keeps it current."""

    history: AnnouncementHistory = AnnouncementHistory()
    ksef_reachable: bool = True


def _apply(state: ModeState) -> None:
    ModeView.history = history_from_mode_state(state)
    ModeView.ksef_reachable = state.ksef_reachable


follower = mode_follower()
follower.subscribe(_apply)


def _submission(event: faust.EventT[Any, Any]) -> Submission:
    msg = event.message
    headers = {k: bytes(v) for k, v in (msg.headers or [])} if msg.headers else {}
    return Submission(
        key=msg.key, value=msg.value, headers=headers,
        origin=KafkaRef(msg.topic, msg.partition, msg.offset),
        received_at=iso(from_timestamp(msg.timestamp)),
    )


def _config() -> SealConfig:
    """The seal settings with the keyring as it is now (the active key may have rotated)."""
    global config
    ring = keyrings.get()
    if ring is not config.keyring:
        config = dataclasses.replace(config, keyring=ring)
    return config


def validate_and_seal(sub: Submission) -> SealedOutput | Rejection:
    """The sealed invoice or the rejection; a bug costs one record, not the stage."""
    try:
        checked = check_submission(sub, checker, polish_today(), policy)
    except Exception as exc:  # never lose a record to a bug
        return reject(sub, "unknown", f"validate stage failed: {type(exc).__name__}")
    if isinstance(checked, Rejection):
        return checked
    try:
        return seal_invoice(checked, _config(), ModeView.history,
                            ksef_reachable=ModeView.ksef_reachable)
    except Exception as exc:
        return build_rejection(invoice_id=checked.invoice_id, stage="seal", code=500,
                               reason="unknown", rejected_at=iso(), origin=checked.origin,
                               received_at=checked.received_at,
                               seller_nip=checked.seller_nip,
                               message=f"seal failed: {type(exc).__name__}")


@app.agent(submitted_topic, name="validate-seal")
async def validate(stream: faust.StreamT[Any]) -> None:
    checker.warm_up()
    try:  # stamp modes from the real state, not from "nothing announced"
        await asyncio.wait_for(follower.wait_ready(), READY_WAIT_S)
    except TimeoutError:
        log.warning("ksef.mode not read yet; sealing with no announcements known")
    # One event at a time on purpose: Faust's take_events acknowledges a whole batch in a
    # `finally`, even when the agent is cancelled before handling it (a rebalance or a
    # stop), which would lose those invoices. A typical invoice costs ~0.5 ms here.
    async for event in guard.events(stream):
        sub = _submission(event)
        metrics.count_in(STAGE)
        await emit(sub, validate_and_seal(sub))


# Refused for good by the producer itself, before the broker: the same record fails again
# after any retry or restart. (Our own check, and aiokafka's max_request_size one.)
PERMANENT = (RecordTooLarge, MessageSizeTooLargeError, RecordTooLargeError)


async def emit(sub: Submission, result: SealedOutput | Rejection) -> None:
    """Produce the record's output; one a topic cannot take becomes a rejection, and a
    rejection that cannot be written either an alert: the worker goes on in every case.

    Refused before sending (`RecordTooLarge`), that happens here; refused by the broker
    (a topic configured below the catalog), before the commit (`ProduceGuard`)."""
    try:
        if isinstance(result, Rejection):
            await _produce_rejection(sub, result)
        else:
            # The deadline tracker learns of the invoice from its first deadline record,
            # keyed by invoice id (the partition that tracks it), not from the sealed topic.
            # Both records fit their topics or neither is produced.
            first = encode(first_record(result.meta, result.deadline, now_utc()))
            invoice_key = result.meta.invoice_id.encode()
            check_record_size(DEADLINES, invoice_key, first)

            async def sealed_refused(error: BaseException) -> None:
                await _reject_instead(sub, error)

            async def deadline_refused(error: BaseException) -> None:
                await _park(sub, error, "its first ksef.deadlines record could not be "
                            "written (the invoice itself was sealed)")

            await produce(SEALED, result.meta.seller_nip.encode(), result.value,
                          sealed_refused)
            await produce(DEADLINES, invoice_key, first, deadline_refused)
            metrics.count_out(STAGE)
        return
    except PERMANENT as exc:
        failure: BaseException = exc
    await _reject_instead(sub, failure)


async def _reject_instead(sub: Submission, failure: BaseException) -> None:
    log.warning("output refused for good; rejecting the record instead",
                origin=str(sub.origin), error=cut(str(failure), 300))
    rejection = reject(sub, "too-large", f"its output cannot be written: {failure}",
                       details={"error": type(failure).__name__})
    try:
        await _produce_rejection(sub, rejection)
        return
    except PERMANENT as exc:
        failure = exc
    await _park(sub, failure)


async def _produce_rejection(sub: Submission, rejection: Rejection) -> None:
    log.info("rejected", invoice_id=rejection.invoice_id, reason=rejection.reason,
             code=rejection.code)

    async def refused(error: BaseException) -> None:
        await _park(sub, error)

    await produce(REJECTED, rejection.invoice_id.encode(), encode(rejection), refused)


async def _park(sub: Submission, failure: BaseException,
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
    try:
        await produce(ALERTS, alert.alert_id.encode(), encode(alert))
    except PERMANENT:
        log.error("record parked without an alert", origin=str(ref))
