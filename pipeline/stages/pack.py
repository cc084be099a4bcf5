"""pack stage: `ksef.invoices.sealed` -> `ksef.batches.packed`.

Per (seller, offline mode) one open batch streams into a deterministic archive in the
spool; it is sealed on 10,000 invoices, before a size limit could be passed, on the
linger time, or at once when its earliest deadline is due. The input events stay
unacknowledged until the batch's manifest is published, so a crash loses nothing: the
invoices come back and are packed again (a batch that was already published is then
submitted twice, which KSeF answers with 440 for the same hash; the upo stage reconciles
that as accepted). Only ciphertext stays in the spool: parts encrypted under a session
key that only KSeF can unwrap; the plaintext archive is deleted once the parts exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import faust
import orjson

from pipeline import logs
from pipeline.app import app, catalog_settings, kafka_settings, topic, worker_settings
from pipeline.clock import iso, now_utc
from pipeline.kafka_reads import read_all
from pipeline.ksef.api import KsefError
from pipeline.ksef.crypto import public_key_from_certificate
from pipeline.ksef.keyring import load_keyring
from pipeline.ksef.package import Fit
from pipeline.ksef_link import KsefClients, KsefSettings
from pipeline.modes.follow import mode_follower
from pipeline.modes.snapshot import should_hold_sessions
from pipeline.stages.packing import OpenBatch, PackSettings, batch_group, manifest_record
from topics import topic_name
from topics.catalog import PACKED, REJECTED, SEALED
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
open_batches: dict[tuple[str, bool], OpenBatch] = {}
# Invoices in manifests published lately (ours or, after a crash, our predecessor's):
# a redelivered invoice found here is already on its way and is not packed twice.
RECENT_WINDOW_S = 15 * 60
RECENT_MAX = 200_000
recently_packed: OrderedDict[str, str] = OrderedDict()
lock = asyncio.Lock()
state: dict[str, Any] = {"stream": None, "ticker": None, "recent": None}


def _remember_packed(record: PackedBatch) -> None:
    for inv in record.invoices:
        recently_packed[inv.invoice_id] = inv.sha256
        recently_packed.move_to_end(inv.invoice_id)
    while len(recently_packed) > RECENT_MAX:
        recently_packed.popitem(last=False)


async def _load_recent() -> None:
    since = int((time.time() - RECENT_WINDOW_S) * 1000)
    for record in await read_all(kafka_settings, topic_name(PACKED, catalog_settings),
                                 PackedBatch, since_ms=since):
        _remember_packed(record)
    log.info("recently packed invoices loaded", invoices=len(recently_packed))


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
    _remember_packed(record)
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
    if recently_packed.get(inv.invoice_id) == inv.sha256:
        await _ack([event])  # redelivered after a crash; its batch is already out
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


last_seen: dict[Any, int] = {}


def _hold(batch: OpenBatch, event: Any) -> None:
    last_seen[event.message.tp] = event.message.offset
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
    if state["recent"] is None:
        state["recent"] = asyncio.ensure_future(_load_recent())
    await state["recent"]
    if state["ticker"] is None:
        state["ticker"] = asyncio.ensure_future(_tick())
        with contextlib.suppress(KsefError):  # remember the MF key while KSeF answers
            await _mf_key()
    async for event in manual.events():
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
    async with lock:
        for group, batch in list(open_batches.items()):
            if any((ref.topic, ref.partition) in mine for ref in (p.ref for p in batch.invoices)):
                batch.builder.abort()
                del open_batches[group]
