"""pack stage: `ksef.invoices.sealed` -> `ksef.batches.packed`.

First the duplicate check: the sealed topic is keyed by seller NIP, so this stage owns
every invoice number of the sellers whose partitions it holds. KSeF's uniqueness key
(seller NIP, RodzajFaktury, P_2) lives in a changelog-backed table, so duplicates are
caught across restarts; a replay (same id, same bytes) is not a duplicate. A number
refused later (a rejection after the check) is given back: `forward_releases` turns such
rejections into releases on `ksef.dedupe.releases` (keyed by seller NIP like the sealed
topic, so a release reaches the partition holding the number) and `release` applies them.
Technical corrections that pass go on to `ksef.invoices.corrections` for the
interactive lane of the submit stage.

Per (seller, offline mode) one open batch streams into a deterministic archive in the
spool; it is sealed on 10,000 invoices, before a size limit could be passed, at once
when its earliest deadline is due, when it is old, or on the linger time once nothing
more waits in Kafka behind it (the backlog view follows every record consumed, held or
not). The batch's first input event per partition stays unacknowledged until its
manifest is published, and no commit passes an unacknowledged record, so a crash loses
nothing: the invoices come back. Whether one that comes back (or a
producer's replay) is already on its way is read from the invoice ledger, which follows
the packed, outcome and rejection topics for the worker's life: an invoice in a
published batch is not packed again, one with an outcome gets that very outcome record
once more, without a new KSeF session. Only ciphertext is ever in the spool: the open
package under a per-batch key held in memory, then parts under a session key that only
KSeF can unwrap (docs/security-spool.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from typing import Any

import faust
import orjson

from pipeline.clock import iso, now_utc
from pipeline.ksef.crypto import public_key_from_certificate
from pipeline.ksef.keyring import KeyringError, MissingKeyError
from pipeline.ksef.package import Fit
from pipeline.ksef.package.spool import private_dir, write_private
from pipeline.ksef_api import KsefError
from pipeline.modes.publish import publish_alert
from pipeline.modes.snapshot import should_hold_sessions
from pipeline.runtime import logs
from pipeline.runtime.app import (
    app,
    in_flight,
    metrics,
    produce,
    topic,
    worker_settings,
)
from pipeline.runtime.backoff import Backoff
from pipeline.runtime.deliveries import held_for_ack
from pipeline.runtime.forwarding import forward_forever
from pipeline.runtime.invoice_ledger import PACKED as PACKED_ENTRY
from pipeline.runtime.invoice_ledger import REFUSED as REFUSED_ENTRY
from pipeline.runtime.invoice_ledger import LedgerEntry, replay_verdict
from pipeline.runtime.key_hold import key_found_alert, missing_key_alert
from pipeline.runtime.replay_guard import ReplayGuard
from pipeline.runtime.settings import ROCKSDB_MEMORY
from pipeline.stages.s2_pack.context import stage_context
from pipeline.stages.s2_pack.duplicates import (
    dedupe,
    duplicate_key,
    held_keys,
    held_value,
    release_for,
)
from pipeline.stages.s2_pack.packing import (
    OpenBatch,
    batch_group,
    manifest_record,
    prepare_spool,
)
from topics.catalog import CORRECTIONS, OUTCOMES, PACKED, REJECTED, RELEASES, SEALED
from topics.codec import decode, encode
from topics.headers import HEADER_BATCH_ID
from topics.records import DedupeRelease, KafkaRef, Rejection, SealedInvoice, origin_text
from topics.rejections import build_rejection
from topics.sealed import SealedRecordError, open_sealed, read_meta

log = logs.get(__name__)
TICK_S = 0.5

sealed_topic = topic(SEALED)
packed_topic = topic(PACKED)
releases_topic = topic(RELEASES)

ctx = stage_context()
DEDUPE_TABLE = "ksef-dedupe"
seen_keys = app.Table(DEDUPE_TABLE, key_type=bytes, value_type=bytes,
                      partitions=sealed_topic.partitions,
                      store=f"{worker_settings.dedupe_store}:{DEDUPE_TABLE}",
                      options=dict(ROCKSDB_MEMORY))
release_guard = ReplayGuard(in_flight)


def _note_packed(batch: OpenBatch) -> None:
    at_ms = int(time.time() * 1000)
    ctx.ledger.note_batch(batch.batch_id, (
        (invoice_id, LedgerEntry(PACKED_ENTRY, sha256, at_ms, batch_id=batch.batch_id,
                                 origin=origin))
        for invoice_id, sha256, origin in batch.packed()))


async def _ack(events: list[Any]) -> None:
    stream = ctx.stream
    for event in events:
        if stream is not None:
            await stream.ack(event)
        else:
            event.ack()


async def _reject(inv_id: str, reason: str, code: int, message: str, event: Any,
                  inv: SealedInvoice | None = None) -> None:
    known = {} if inv is None else {"seller_nip": inv.seller_nip, "origin": inv.origin,
                                    "invoice_number": inv.invoice_number, "sha256": inv.sha256}
    rej = build_rejection(invoice_id=inv_id, stage="pack", code=code, reason=reason,
                          message=message, rejected_at=iso(), **known)
    await produce(REJECTED, inv_id.encode(), encode(rej))
    await _ack([event])


async def _mf_key() -> tuple[Any, str | None]:
    """The MF SymmetricKeyEncryption key (RSA key, its id): from KSeF, else the copy kept
    in the spool, so packing goes on through an outage once the key was seen."""
    try:
        key = await ctx.clients.public().encryption_key()
    except KsefError:
        if not ctx.mf_key_file.exists():
            raise
        saved = orjson.loads(ctx.mf_key_file.read_bytes())
        if dt.datetime.fromisoformat(saved["valid_to"]) <= now_utc():
            raise
        return public_key_from_certificate(saved["certificate"]), saved["public_key_id"]
    private_dir(ctx.mf_key_file.parent)
    write_private(ctx.mf_key_file, orjson.dumps({
        "certificate": key.certificate_b64, "public_key_id": key.public_key_id,
        "valid_to": key.valid_to.isoformat()}), fsync=False)
    return key.key, key.public_key_id


async def _mf_key_waiting(batch_id: str) -> tuple[Any, str | None]:
    """The MF key, waiting out a KSeF outage (a full batch cannot be sealed without it)."""
    backoff = Backoff(1.0, 30.0)
    while True:
        try:
            return await _mf_key()
        except KsefError as exc:
            log.warning("MF public key unavailable; batch stays open", error=str(exc),
                        batch_id=batch_id, retry_in_s=backoff.next_s)
            await backoff.wait()


async def _flush(group: tuple[str, bool], why: str,
                 mf: tuple[Any, str | None] | None = None) -> None:
    """Seal the open batch of `group` and publish its manifest; without the MF key at
    hand (`mf`) it waits out a KSeF outage with the batch kept open."""
    batch = ctx.open_batches[group]
    mf_key, key_id = mf if mf is not None else await _mf_key_waiting(batch.batch_id)
    packaged = await asyncio.to_thread(batch.builder.finish, mf_key, keep_package=False)
    record = manifest_record(batch, packaged, key_id)
    await packed_topic.send(key=batch.seller_nip.encode(), value=record,
                            headers={HEADER_BATCH_ID: batch.batch_id.encode()})
    del record
    metrics.count_out("pack", batch.count)
    _note_packed(batch)
    del ctx.open_batches[group]
    log.info("batch packed", batch_id=batch.batch_id, seller_nip=batch.seller_nip,
             invoices=batch.count, parts=len(packaged.manifest.parts),
             package_bytes=packaged.manifest.package_size, reason=why)
    await _ack(list(batch.heads.values()))


async def _add(event: Any) -> None:
    msg = event.message
    ref = KafkaRef(msg.topic, msg.partition, msg.offset)
    try:
        inv = read_meta(msg.value)
    except (ValueError, TypeError) as exc:
        key = (msg.key or b"?").decode("utf-8", "replace")
        await _reject(f"undecodable:{ref.topic}/{ref.partition}/{ref.offset}", "unknown", 500,
                      f"sealed record does not decode ({type(exc).__name__}); key {key}", event)
        return
    if not await _number_is_free(inv, event):
        return
    if inv.technical_correction_of:  # the interactive lane (submit stage) sends these
        await produce(CORRECTIONS, inv.seller_nip.encode(), msg.value)
        await _ack([event])
        return
    origin = origin_text(inv.origin)
    verdict = replay_verdict(ctx.ledger.packed(inv.invoice_id), ctx.ledger.final(inv.invoice_id),
                             inv.sha256, origin, ctx.ledger.answered(inv.invoice_id))
    if verdict != "pack":
        await _replayed(inv, verdict, event)
        return
    group = batch_group(inv)
    batch = ctx.open_batches.get(group)
    if batch is not None and inv.invoice_id in batch.invoice_ids:
        # Delivered again (Faust re-reads a few records around a rebalance): it is in
        # this batch already, so its event only counts as held or acknowledged.
        await _hold(batch, event)
        return
    try:
        opened = open_sealed(msg.value, ctx.keyrings.get(), inv)
        # The deflated invoice goes into the ZIP as it is, with the size and CRC-32 its
        # record carries: inflated only for a TAR, a stored ZIP or an older record.
        xml = None if opened.zip_ready else opened.invoice()
    except MissingKeyError as exc:
        if ctx.keyrings.has(exc.key_id):  # the file brought it just now: open it again
            await _add(event)
        else:
            await _hold_for_key(exc.key_id, inv, event)
        return
    except (KeyringError, SealedRecordError) as exc:
        await _reject(inv.invoice_id, "decryption", 435, str(exc), event, inv)
        return
    size = inv.size if xml is None else len(xml)
    if batch is not None and batch.builder.verdict(size) is Fit.FULL:
        await _flush(group, "limit")
        batch = None
    if batch is None:
        batch = ctx.open_batches[group] = OpenBatch.start(group, ctx.settings)
    if batch.builder.verdict(size) is Fit.NEVER:
        await _reject(inv.invoice_id, "too-large", 430,
                      f"invoice of {size} bytes cannot fit any batch package", event, inv)
        return
    if xml is None and not batch.builder.takes_deflated:
        try:
            xml = opened.invoice()
        except SealedRecordError as exc:
            await _reject(inv.invoice_id, "decryption", 435, str(exc), event, inv)
            return
    batch.add(inv, xml, ref, deflated=opened.deflated)
    await _hold(batch, event)
    if batch.due_to_flush(ctx.settings, time.monotonic()) == "full":
        await _flush(group, "full")


async def _hold_for_key(key_id: str, inv: SealedInvoice, event: Any) -> None:
    if ctx.key_holds.hold(key_id, event):
        log.error("invoice sealed under a key the keyring lacks: held, not rejected",
                  invoice_id=inv.invoice_id, key_id=key_id)
        await publish_alert(missing_key_alert(key_id, "pack", now_utc(),
                                              invoice_id=inv.invoice_id,
                                              seller_nip=inv.seller_nip,
                                              keyring_ids=ctx.keyrings.get().key_ids))


async def _retry_held_keys() -> None:
    """Pack the held invoices whose key the keyring has now (the file is re-read when
    it changed, at most every KSEF_KEYRING_CHECK_S)."""
    for key_id, events in ctx.key_holds.ready(ctx.keyrings.get().key_ids):
        log.info("key now in the keyring: held invoices go on", key_id=key_id,
                 held=len(events))
        await publish_alert(key_found_alert(key_id, "pack", now_utc(), len(events)))
        for event in events:
            try:
                await _add(event)
            except Exception as exc:
                log.exception("pack failed on a held record")
                await _reject(f"pack-error:{event.message.partition}/{event.message.offset}",
                              "unknown", 500, f"pack stage failed: {type(exc).__name__}",
                              event)


async def _number_is_free(inv: SealedInvoice, event: Any) -> bool:
    """KSeF's uniqueness rule: the number is taken here, or the invoice is a duplicate
    (rejected) or a replay of the invoice holding it (passes again)."""
    key = duplicate_key(inv).encode()
    seen = seen_keys.get(key)
    store, rej = dedupe(inv, seen.decode() if seen is not None else None)
    if rej is not None:
        earlier = ctx.ledger.refused(inv.invoice_id)
        if (earlier is not None and earlier.sha256 == inv.sha256
                and earlier.origin is not None and earlier.origin == origin_text(inv.origin)):
            log.info("duplicate delivered again; its refusal stands",
                     invoice_id=inv.invoice_id)
            await _ack([event])  # this very submission was refused already: redelivered
            return False
        log.info("rejected", invoice_id=rej.invoice_id, reason=rej.reason, code=rej.code)
        await produce(REJECTED, rej.invoice_id.encode(), encode(rej))
        # Known here at once, not only when the rejection is read back: a second copy of
        # this record close behind (a rebalance's redelivery) must find it refused.
        ctx.ledger.note(inv.invoice_id, LedgerEntry(REFUSED_ENTRY, inv.sha256,
                                                int(time.time() * 1000), code=rej.code,
                                                origin=origin_text(inv.origin)))
        await _ack([event])
        return False
    if store is not None:
        seen_keys[key] = store.encode()
    return True


async def _replayed(inv: SealedInvoice, verdict: str, event: Any) -> None:
    """A replay (or a redelivery after a crash or a takeover) of an invoice whose batch
    is already published: it is not packed again. One that already has its outcome gets
    that very record once more, so the replay ends like the first submission."""
    final = ctx.ledger.final(inv.invoice_id)
    if verdict == "outcome-again" and final is not None and final.record is not None:
        await produce(OUTCOMES, inv.invoice_id.encode(), final.record)
        origin = origin_text(inv.origin)
        if origin is not None:
            ctx.ledger.note_answered(inv.invoice_id, origin)
        log.info("replayed invoice already in KSeF; its outcome is emitted again",
                 invoice_id=inv.invoice_id, ksef_number=final.ksef_number)
    await _ack([event])


async def _hold(batch: OpenBatch, event: Any) -> None:
    """Keep the batch's invoice from being committed past until its manifest is published.

    Commits stop at the lowest delivered record not acknowledged yet
    (`faust_fixes.never_commit_past_pending`), so the batch's first record per partition
    holds back every later one: only that one stays unacknowledged (stripped of its
    bytes), the rest are acknowledged at once. Holding all of them kept ~0.5 KB of Faust
    bookkeeping per invoice while the batch filled, 5 MB for 10,000 invoices."""
    tp = event.message.tp
    head = batch.heads.get(tp)
    if head is None or event.message.offset < head.message.offset:
        batch.heads[tp], event = held_for_ack(event), head
    if event is not None:
        await _ack([event])


def _backlog() -> bool:
    """More sealed invoices wait in Kafka for this worker (from the fetcher's view)."""
    for tp, offset in ctx.last_seen.items():
        try:
            highwater = app.consumer.highwater(tp)
        except Exception:  # not assigned any more, or not fetched yet
            continue
        if highwater is not None and highwater > offset + 1:
            return True
    return False


async def _tick() -> None:
    mf: tuple[Any, str | None] | None = None
    with contextlib.suppress(KsefError):  # remember the MF key while KSeF answers
        mf = await _mf_key()
    while True:
        await asyncio.sleep(TICK_S)
        try:
            if ctx.key_holds:
                async with ctx.lock:
                    await _retry_held_keys()
            if ctx.open_batches and mf is None:
                # Fetched outside the ctx.lock: while KSeF cannot give the key, records go on
                # being checked and added (duplicates refused, full batches aside).
                try:
                    mf = await _mf_key()
                except KsefError as exc:
                    log.warning("MF public key unavailable; batches stay open",
                                error=str(exc), batches=len(ctx.open_batches))
                    await asyncio.sleep(min(30.0, ctx.settings.linger_s))
                    continue
            async with ctx.lock:
                now = time.monotonic()
                # During an announced outage only full or deadline-bound batches are sealed:
                # the backlog then drains in full batches when KSeF is back.
                # A quiet batch is sealed on linger only when nothing more is waiting in
                # Kafka: after an outage the backlog must leave in full batches.
                holding = should_hold_sessions(ctx.follower.state)
                waiting = _backlog()
                for group, batch in list(ctx.open_batches.items()):
                    why = batch.due_to_flush(ctx.settings, now)
                    if why == "linger" and waiting:
                        continue
                    if why == "deadline" and batch.still_filling(ctx.settings, now):
                        continue
                    if why and not (holding and why in ("linger", "age")):
                        await _flush(group, why, mf)
            if not ctx.open_batches:
                mf = None  # fetched afresh for the next batch (the key may rotate)
        except Exception:  # keep ticking; the batch stays open and is retried
            log.exception("pack tick failed")


@app.agent(sealed_topic, name="pack")
async def pack(stream: faust.StreamT[Any]) -> None:
    manual = stream.noack()
    ctx.stream = manual
    if ctx.ticker is None:
        swept = await asyncio.to_thread(prepare_spool, ctx.settings)  # see docs/security-spool.md
        (log.warning if swept.error else log.info)(
            "spool swept", removed=len(swept.removed), kept=len(swept.kept),
            busy=len(swept.busy), error=swept.error)
        ctx.ticker = asyncio.ensure_future(_tick())
    async for event in manual.events():
        tp = event.message.tp
        if tp not in ctx.synced:
            await ctx.ledger.caught_up()
            ctx.synced.add(tp)
        ctx.last_seen[tp] = event.message.offset
        metrics.count_in("pack")
        async with ctx.lock:
            if (tp.topic, tp.partition) in ctx.given_away:
                continue  # revoked while this event waited: its new owner packs it
            try:
                await _add(event)
            except Exception as exc:
                log.exception("pack failed on a record")
                await _reject(f"pack-error:{event.message.partition}/{event.message.offset}",
                              "unknown", 500, f"pack stage failed: {type(exc).__name__}", event)


@app.agent(releases_topic, name="pack-release")
async def release(stream: faust.StreamT[Any]) -> None:
    """Give back the numbers of invoices refused after the check."""
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
            out.append((rel.seller_nip.encode(), encode(rel)))
    return out


@app.on_partitions_revoked.connect
async def _drop_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
    """Another worker now owns these invoices (unacked, they are redelivered there)."""
    mine = {(tp.topic, tp.partition) for tp in revoked}
    ctx.synced.clear()
    ctx.given_away.update(mine)
    async with ctx.lock:
        ctx.key_holds.drop(mine)
        for group, batch in list(ctx.open_batches.items()):
            if batch.partitions() & mine:
                batch.builder.abort()
                del ctx.open_batches[group]


@app.on_partitions_assigned.connect
async def _take_assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
    """Partitions (back) in this worker's hands: their events are packed here again."""
    ctx.given_away.difference_update((tp.topic, tp.partition) for tp in assigned)
