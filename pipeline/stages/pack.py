"""pack stage: `ksef.invoices.sealed` -> `ksef.batches.packed`.

Per (seller, offline mode) one open batch streams into a deterministic archive in the
spool; it is sealed on 10,000 invoices, before a size limit could be passed, at once
when its earliest deadline is due, when it is old, or on the linger time once nothing
more waits in Kafka behind it (the backlog view follows every record consumed, held or
not). The input events stay unacknowledged until the batch's manifest is published, so
a crash loses nothing: the invoices come back. Whether one that comes back (or a
producer's replay) is already on its way is read from the invoice ledger, which follows
the packed, outcome and rejection topics for the worker's life: an invoice in a
published batch is not packed again, one with an outcome gets that very outcome record
once more, without a new KSeF session. Only ciphertext stays in the spool: parts
encrypted under a session key that only KSeF can unwrap.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from pathlib import Path
from typing import Any

import faust
import orjson

from pipeline import logs
from pipeline.app import app, produce, topic, worker_settings
from pipeline.clock import iso, now_utc
from pipeline.invoice_ledger import PACKED as PACKED_ENTRY
from pipeline.invoice_ledger import LedgerEntry, invoice_ledger, origin_text, replay_verdict
from pipeline.keyring_file import load_keyring
from pipeline.ksef.crypto import public_key_from_certificate
from pipeline.ksef.package import Fit
from pipeline.ksef_api import KsefError
from pipeline.ksef_api.link import KsefClients, KsefSettings
from pipeline.modes.follow import mode_follower
from pipeline.modes.snapshot import should_hold_sessions
from pipeline.stages.packing import OpenBatch, PackSettings, batch_group, manifest_record
from topics.catalog import OUTCOMES, PACKED, REJECTED, SEALED
from topics.codec import decode, encode
from topics.records import KafkaRef, PackedBatch, Rejection, SealedInvoice

log = logs.get(__name__)
TICK_S = 0.5

sealed_topic = topic(SEALED)
packed_topic = topic(PACKED)
rejected_topic = topic(REJECTED)

settings = PackSettings.from_env(worker_settings.data_dir)
keyring = load_keyring(Path(worker_settings.data_dir).parent / "keyring.json")
clients = KsefClients(KsefSettings.from_env())
follower = mode_follower()
ledger = invoice_ledger()
open_batches: dict[tuple[str, bool], OpenBatch] = {}
lock = asyncio.Lock()
state: dict[str, Any] = {"stream": None, "ticker": None}
# Partitions whose first record since the assignment waited for the ledger: a worker
# taking over from a killed one must know the batches that one published before it
# decides whether a redelivered invoice is already on its way.
synced: set[Any] = set()
# The offset of the last record consumed per partition (held, skipped or rejected): a
# quiet batch is sealed on linger only when nothing more waits in Kafka behind it.
last_seen: dict[Any, int] = {}


def _note_packed(record: PackedBatch) -> None:
    at_ms = int(time.time() * 1000)
    for inv in record.invoices:
        ledger.note(inv.invoice_id, LedgerEntry(PACKED_ENTRY, inv.sha256, at_ms,
                                                batch_id=record.batch_id,
                                                origin=origin_text(inv.origin)))


async def _ack(events: list[Any]) -> None:
    stream = state["stream"]
    for event in events:
        if stream is not None:
            await stream.ack(event)
        else:
            event.ack()


async def _reject(inv_id: str, reason: str, code: int, message: str, event: Any,
                  inv: SealedInvoice | None = None) -> None:
    known = {} if inv is None else {"seller_nip": inv.seller_nip, "origin": inv.origin,
                                    "invoice_number": inv.invoice_number, "sha256": inv.sha256}
    rej = Rejection(invoice_id=inv_id, stage="pack", code=code, reason=reason, message=message,
                    rejected_at=iso(), **known)
    await rejected_topic.send(key=inv_id.encode(), value=encode(rej))
    await _ack([event])


MF_KEY_FILE = settings.spool_dir / "mf-public-key.json"


async def _mf_key() -> tuple[Any, str | None]:
    """The MF SymmetricKeyEncryption key (RSA key, its id): from KSeF, else the copy kept
    in the spool, so packing goes on through an outage once the key was seen."""
    try:
        key = await clients.public().encryption_key()
    except KsefError:
        if not MF_KEY_FILE.exists():
            raise
        saved = orjson.loads(MF_KEY_FILE.read_bytes())
        if dt.datetime.fromisoformat(saved["valid_to"]) <= now_utc():
            raise
        return public_key_from_certificate(saved["certificate"]), saved["public_key_id"]
    MF_KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    MF_KEY_FILE.write_bytes(orjson.dumps({
        "certificate": key.certificate_b64, "public_key_id": key.public_key_id,
        "valid_to": key.valid_to.isoformat()}))
    return key.key, key.public_key_id


async def _flush(group: tuple[str, bool], why: str) -> None:
    """Seal the open batch of `group` and publish its manifest; waits out KSeF outages
    (the MF key is needed to wrap the session key) with the batch kept open."""
    batch = open_batches[group]
    delay = 1.0
    while True:
        try:
            mf_key, key_id = await _mf_key()
            break
        except KsefError as exc:
            log.warning("MF public key unavailable; batch stays open", error=str(exc),
                        batch_id=batch.batch_id, retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
    packaged = await asyncio.to_thread(batch.builder.finish, mf_key, keep_package=False)
    record = manifest_record(batch, packaged, key_id)
    await packed_topic.send(key=batch.seller_nip.encode(), value=encode(record))
    _note_packed(record)
    del open_batches[group]
    log.info("batch packed", batch_id=batch.batch_id, seller_nip=batch.seller_nip,
             invoices=len(batch.invoices), parts=len(record.parts),
             package_bytes=record.package_size, reason=why)
    await _ack(batch.held)


async def _add(event: Any) -> None:
    msg = event.message
    ref = KafkaRef(msg.topic, msg.partition, msg.offset)
    try:
        inv = decode(SealedInvoice, msg.value)
    except (ValueError, TypeError) as exc:
        key = (msg.key or b"?").decode("utf-8", "replace")
        await _reject(f"undecodable:{ref.topic}/{ref.partition}/{ref.offset}", "unknown", 500,
                      f"sealed record does not decode ({type(exc).__name__}); key {key}", event)
        return
    if inv.technical_correction_of:
        await _ack([event])  # the interactive lane (submit stage) sends these
        return
    origin = origin_text(inv.origin)
    verdict = replay_verdict(ledger.packed(inv.invoice_id), ledger.final(inv.invoice_id),
                             inv.sha256, origin, ledger.answered(inv.invoice_id))
    if verdict != "pack":
        await _replayed(inv, verdict, event)
        return
    group = batch_group(inv)
    batch = open_batches.get(group)
    if batch is not None and inv.invoice_id in batch.invoice_ids:
        # Delivered again (Faust re-reads a few records around a rebalance): it is in
        # this batch already, so its event is simply acknowledged with the batch.
        _hold(batch, event)
        return
    try:
        xml = keyring.open_invoice(inv.key_id, inv.nonce_b64, inv.ciphertext_b64,
                                   inv.invoice_id)
    except ValueError as exc:
        await _reject(inv.invoice_id, "decryption", 435, str(exc), event, inv)
        return
    if batch is not None and batch.builder.verdict(len(xml)) is Fit.FULL:
        await _flush(group, "limit")
        batch = None
    if batch is None:
        batch = open_batches[group] = OpenBatch.start(group, settings)
    if batch.builder.verdict(len(xml)) is Fit.NEVER:
        await _reject(inv.invoice_id, "too-large", 430,
                      f"invoice of {len(xml)} bytes cannot fit any batch package", event, inv)
        return
    batch.add(inv, xml, ref)
    _hold(batch, event)
    if batch.due_to_flush(settings, time.monotonic()) == "full":
        await _flush(group, "full")


async def _replayed(inv: SealedInvoice, verdict: str, event: Any) -> None:
    """A replay (or a redelivery after a crash or a takeover) of an invoice whose batch
    is already published: it is not packed again. One that already has its outcome gets
    that very record once more, so the replay ends like the first submission."""
    final = ledger.final(inv.invoice_id)
    if verdict == "outcome-again" and final is not None and final.record is not None:
        await produce(OUTCOMES, inv.invoice_id.encode(), final.record)
        origin = origin_text(inv.origin)
        if origin is not None:
            ledger.note_answered(inv.invoice_id, origin)
        log.info("replayed invoice already in KSeF; its outcome is emitted again",
                 invoice_id=inv.invoice_id, ksef_number=final.ksef_number)
    await _ack([event])


def _hold(batch: OpenBatch, event: Any) -> None:
    # Keep the event only to acknowledge it later: drop its payload so a held batch of
    # 10,000 invoices costs kilobytes, not the sealed records' 200 MB.
    event.message.value = None
    event.value = None
    batch.held.append(event)


def _backlog() -> bool:
    """More sealed invoices wait in Kafka for this worker (from the fetcher's view)."""
    for tp, offset in last_seen.items():
        try:
            highwater = app.consumer.highwater(tp)
        except Exception:  # not assigned any more, or not fetched yet
            continue
        if highwater is not None and highwater > offset + 1:
            return True
    return False


async def _tick() -> None:
    while True:
        await asyncio.sleep(TICK_S)
        try:
            async with lock:
                now = time.monotonic()
                # During an announced outage only full or deadline-bound batches are sealed:
                # the backlog then drains in full batches when KSeF is back.
                # A quiet batch is sealed on linger only when nothing more is waiting in
                # Kafka: after an outage the backlog must leave in full batches.
                holding = should_hold_sessions(follower.state)
                waiting = _backlog()
                for group, batch in list(open_batches.items()):
                    why = batch.due_to_flush(settings, now)
                    if why == "linger" and waiting:
                        continue
                    if why and not (holding and why in ("linger", "age")):
                        await _flush(group, why)
        except Exception:  # keep ticking; the batch stays open and is retried
            log.exception("pack tick failed")


@app.agent(sealed_topic, name="pack")
async def pack(stream: faust.StreamT[Any]) -> None:
    manual = stream.noack()
    state["stream"] = manual
    if state["ticker"] is None:
        state["ticker"] = asyncio.ensure_future(_tick())
        with contextlib.suppress(KsefError):  # remember the MF key while KSeF answers
            await _mf_key()
    async for event in manual.events():
        tp = event.message.tp
        if tp not in synced:
            await ledger.caught_up()
            synced.add(tp)
        last_seen[tp] = event.message.offset
        async with lock:
            try:
                await _add(event)
            except Exception as exc:
                log.exception("pack failed on a record")
                await _reject(f"pack-error:{event.message.partition}/{event.message.offset}",
                              "unknown", 500, f"pack stage failed: {type(exc).__name__}", event)


@app.on_partitions_revoked.connect
async def _drop_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
    """Another worker now owns these invoices (unacked, they are redelivered there)."""
    mine = {(tp.topic, tp.partition) for tp in revoked}
    synced.clear()
    async with lock:
        for group, batch in list(open_batches.items()):
            if any((ref.topic, ref.partition) in mine for ref in (p.ref for p in batch.invoices)):
                batch.builder.abort()
                del open_batches[group]
