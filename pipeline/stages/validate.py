"""validate stage: `ksef.invoices.submitted` -> `.validated` | `.rejected`.

Two agents. `check` runs every stateless KSeF pre-check (one lxml parse + XSD
validation, ~0.5 ms for a typical invoice) and repartitions passing invoices by
(seller NIP, P_2) onto `ksef.invoices.checked`. `dedupe` owns the partition of that
key and keeps KSeF's uniqueness key (seller NIP, RodzajFaktury, P_2) in a
changelog-backed table, so duplicates are caught across all input partitions and
across restarts. Any failure of one record becomes a rejection; the agent itself never
dies on input.

An invoice refused after validation is not in KSeF, so its number is free again:
`forward_releases` (a consumer group of its own on `ksef.invoices.rejected`, so it
takes no partition from other stages reading that topic) turns such rejections into
releases on `ksef.dedupe.releases`, partitioned like `.checked`, and `release` gives
the key back in the same table.
"""

from __future__ import annotations

import contextlib
from typing import Any

import faust
import orjson

from pipeline import logs
from pipeline.app import app, produce, topic, worker_settings
from pipeline.clock import from_timestamp, iso, polish_today
from pipeline.forwarding import forward_forever
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.stages.replay_guard import ReplayGuard
from pipeline.stages.submission import (
    AttachmentPolicy,
    Submission,
    check_submission,
    dedupe,
    duplicate_key,
    held_keys,
    held_value,
    reject,
    release_for,
    routing_key,
)
from topics.catalog import CHECKED, REJECTED, RELEASES, SUBMITTED, VALIDATED
from topics.codec import decode, encode
from topics.records import DedupeRelease, KafkaRef, Rejection, ValidatedInvoice

log = logs.get(__name__)

submitted_topic = topic(SUBMITTED)
checked_topic = topic(CHECKED)
releases_topic = topic(RELEASES)

checker = InvoiceChecker()
check_guard = ReplayGuard()
dedupe_guard = ReplayGuard()
release_guard = ReplayGuard()
policy = AttachmentPolicy.from_env()
DEDUPE_TABLE = "ksef-dedupe"
seen_keys = app.Table(DEDUPE_TABLE, key_type=bytes, value_type=bytes,
                      partitions=checked_topic.partitions,
                      store=f"{worker_settings.dedupe_store}:{DEDUPE_TABLE}")


def _submission(event: faust.EventT[Any, Any]) -> Submission:
    msg = event.message
    headers = {k: bytes(v) for k, v in (msg.headers or [])} if msg.headers else {}
    return Submission(
        key=msg.key, value=msg.value, headers=headers,
        origin=KafkaRef(msg.topic, msg.partition, msg.offset),
        received_at=iso(from_timestamp(msg.timestamp)),
    )


def _check(sub: Submission) -> ValidatedInvoice | Rejection:
    try:
        return check_submission(sub, checker, polish_today(), policy)
    except Exception as exc:  # never lose a record to a bug
        return reject(sub, "unknown", f"validate stage failed: {type(exc).__name__}")


async def _emit_rejection(rej: Rejection) -> None:
    log.info("rejected", invoice_id=rej.invoice_id, reason=rej.reason, code=rej.code)
    await produce(REJECTED, rej.invoice_id.encode(), encode(rej))


@app.agent(submitted_topic, name="validate-check")
async def check(stream: faust.StreamT[Any]) -> None:
    # One event at a time on purpose: Faust's take_events acknowledges a whole batch in a
    # `finally`, even when the agent is cancelled before handling it (a rebalance or a
    # stop), which would lose those invoices. A typical invoice costs ~0.5 ms here.
    checker.warm_up()
    async for event in check_guard.events(stream):
        result = _check(_submission(event))
        if isinstance(result, Rejection):
            await _emit_rejection(result)
        else:
            key = routing_key(result.seller_nip, result.invoice_number)
            await produce(CHECKED, key.encode(), encode(result))


@app.agent(checked_topic, name="validate-dedupe")
async def dedupe_agent(stream: faust.StreamT[Any]) -> None:
    async for event in dedupe_guard.events(stream):
        try:
            inv = decode(ValidatedInvoice, event.value)
            key = duplicate_key(inv).encode()
            seen = seen_keys.get(key)
            store, rej = dedupe(inv, seen.decode() if seen is not None else None)
        except Exception as exc:  # only our own stage writes here; still, lose nothing
            log.error("dedupe failed", error=type(exc).__name__, offset=event.message.offset)
            invoice_id = "unknown"
            with contextlib.suppress(Exception):
                invoice_id = orjson.loads(event.value)["invoice_id"]
            await _emit_rejection(Rejection(
                invoice_id=invoice_id, stage="validate", code=500, reason="unknown",
                message=f"duplicate check failed: {type(exc).__name__}", rejected_at=iso()))
            continue
        if rej is not None:
            await _emit_rejection(rej)
            continue
        if store is not None:
            seen_keys[key] = store.encode()
        await produce(VALIDATED, inv.invoice_id.encode(), event.value)


@app.agent(releases_topic, name="validate-release")
async def release(stream: faust.StreamT[Any]) -> None:
    async for event in release_guard.events(stream):
        try:
            rel = decode(DedupeRelease, event.value)
        except (ValueError, TypeError) as exc:  # only our own task writes here
            log.error("unreadable dedupe release", offset=event.message.offset,
                      error=str(exc))
            continue
        held = held_value(rel.invoice_id, rel.sha256).encode()
        freed = [key for key in map(str.encode, held_keys(rel)) if seen_keys.get(key) == held]
        for key in freed:
            del seen_keys[key]
        log.info("dedupe release applied", invoice_id=rel.invoice_id, stage=rel.stage,
                 reason=rel.reason, released=bool(freed))


@app.task
async def forward_releases() -> None:
    """`ksef.invoices.rejected` -> `ksef.dedupe.releases`, in a group of its own."""
    await forward_forever(REJECTED, f"{app.conf.id}-dedupe-release", RELEASES, _releases)


def _releases(messages: list[Any]) -> list[tuple[bytes, bytes]]:
    out = []
    for message in messages:
        try:
            rel = release_for(decode(Rejection, message.value or b""))
        except (ValueError, TypeError):  # not a rejection record: nothing to release
            continue
        if rel is not None:
            out.append((routing_key(rel.seller_nip, rel.invoice_number).encode(), encode(rel)))
    return out
