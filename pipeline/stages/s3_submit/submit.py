"""submit stage: `ksef.batches.packed` -> KSeF batch sessions, every step on `ksef.sessions`.

Manifests wait in an earliest-deadline-first queue shared by all seller contexts; a few
dispatchers take the most urgent one, open its batch session (the documented request
windows are respected by the client before sending; 429 Retry-After is honoured), stream
the encrypted parts from the spool in parallel, and close the session. The manifest's
event is acknowledged only after `closed` is journaled, and the journal is read back from
`ksef.sessions` at start-up, so after a crash a batch resumes where it stopped: parts
KSeF already has are not sent again, a closed session is never opened a second time.

A context that cannot authenticate (no credentials, refused or unusable ones) is held,
not rejected (`credential_hold`): its batches are put back and skipped until the next
recheck or a change of the credential files, while the other contexts keep flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust

from pipeline.clock import iso, now_utc
from pipeline.ksef.keyring import MissingKeyError
from pipeline.ksef.package import (
    BatchLimits,
    PackageManifest,
    RebuildMismatch,
    SpoolKey,
    rebuild_package,
)
from pipeline.ksef.package.builder import seal_package
from pipeline.ksef.package.spool import BatchLock
from pipeline.ksef_api import (
    BatchSession,
    KsefError,
    KsefRateLimited,
    KsefUnavailable,
    PartUpload,
)
from pipeline.ksef_api.link import KsefClients, KsefSettings
from pipeline.ksef_api.manifest import batch_spec, part_files, part_sizes
from pipeline.metrics.ksef import request_observer, watch_headroom
from pipeline.modes.follow import mode_follower
from pipeline.modes.observed import HealthReporter
from pipeline.modes.publish import publish_alert, publish_announcement
from pipeline.modes.snapshot import should_hold_sessions
from pipeline.runtime import logs
from pipeline.runtime.app import app, kafka_settings, metrics, topic, worker_settings
from pipeline.runtime.backoff import Backoff
from pipeline.runtime.invoice_ledger import origin_text
from pipeline.runtime.key_hold import missing_key_alert
from pipeline.runtime.keyring_file import keyring_source
from pipeline.runtime.session_follow import sessions_follower
from pipeline.runtime.settings import ObservedOutageSettings, SubmitStageSettings
from pipeline.runtime.spool_paths import batch_spool, drop_batch_spool, spool_root
from pipeline.runtime.topic_reads import SequentialReader
from pipeline.stages.s3_submit.batch_queue import BatchQueue
from pipeline.stages.s3_submit.credential_hold import (
    Decision,
    Holds,
    decide,
    release_covers,
    release_reason,
)
from pipeline.stages.s3_submit.credential_watch import ExpiryWatch
from pipeline.stages.s3_submit.held_releases import release_book
from topics.catalog import CORRECTIONS, PACKED, REJECTED, SESSIONS
from topics.codec import decode, encode, from_dict
from topics.records import Alert, HeldRelease, PackedBatch, Rejection, SealedInvoice, SessionStep
from topics.rejections import build_rejection
from topics.sealed import open_sealed, read_meta
from topics.session_journal import (
    CLOSED,
    FAILED,
    FINAL,
    OPENED,
    OPENING,
    PART_UPLOADED,
    Journal,
)

log = logs.get(__name__)

packed_topic = topic(PACKED)
sessions_topic = topic(SESSIONS)
rejected_topic = topic(REJECTED)

stage_settings = SubmitStageSettings.from_env()
CONCURRENCY = stage_settings.concurrency
UPLOAD_WINDOW_PER_PART = dt.timedelta(minutes=20)

follower = mode_follower()
health = HealthReporter(publish_announcement, lambda: follower.state, threshold=dt.timedelta(
    seconds=ObservedOutageSettings.from_env().outage_after_s))
clients = KsefClients(KsefSettings.from_env(),
                      observer=request_observer(metrics, health.observe))
watch_headroom(metrics, clients.headroom)
keyrings = keyring_source()  # re-read on change: a rotation needs no restart
missing_keys: set[str] = set()  # key ids alerted as missing (once each)
KEY_RECHECK_S = 5.0
# Batch directories are derived from this root and the batch id, never from a record.
SPOOL_ROOT = spool_root(worker_settings)
journal = Journal()
sessions = sessions_follower()
sessions.subscribe(journal.apply)
waiting = BatchQueue()
state: dict[str, Any] = {"stream": None, "dispatchers": []}

RECHECK_S = stage_settings.credential_recheck_s
CREDENTIAL_CHECK_S = stage_settings.credential_check_s
FILES_POLL_S = 1.0
holds = Holds(dt.timedelta(seconds=RECHECK_S))
opened_here: set[str] = set()  # batch sessions this worker opened and has not closed yet
metrics.on_scrape("submit", lambda m: m.sessions_open.set(len(opened_here)))
expiry = ExpiryWatch()
releases = release_book()
SETTLED, RETRY, HELD = "settled", "retry", "held"


def _on_release(release: HeldRelease) -> None:
    """An operator's release: try the context's held batches at once (they are rejected
    if it still cannot authenticate)."""
    log.warning("operator release of held invoices", seller_nip=release.seller_nip,
                request_id=release.request_id, requested_by=release.requested_by)
    holds.wake(release.seller_nip)
    waiting.poke()


releases.on_release = _on_release


async def _journal_step(batch_id: str, seller_nip: str, step: str, session_ref: str | None,
                        kind: str, details: dict[str, Any]) -> None:
    entry = SessionStep(batch_id=batch_id, seller_nip=seller_nip, step=step, at=iso(),
                        session_ref=session_ref, kind=kind, details=details)
    journal.apply(entry)
    delivered = await sessions_topic.send(key=batch_id.encode(), value=encode(entry))
    await delivered  # write-ahead: durable before the side effect it records happens


async def _journal(rec: PackedBatch, step: str, session_ref: str | None = None,
                   **details: Any) -> None:
    await _journal_step(rec.batch_id, rec.seller_nip, step, session_ref, "batch", details)


async def _journal_loaded() -> None:
    """Every step in `ksef.sessions` up to now is in the journal: also those a worker
    journaled just before it died and this one took its batches over."""
    await sessions.caught_up()


async def _reject_all(rec: PackedBatch, code: int, reason: str, message: str,
                      session_ref: str | None = None) -> None:
    for inv in rec.invoices:
        rej = build_rejection(invoice_id=inv.invoice_id, stage="submit", code=code,
                              reason=reason, message=message, rejected_at=iso(),
                              seller_nip=rec.seller_nip, invoice_number=inv.invoice_number,
                              sha256=inv.sha256, session_ref=session_ref, origin=inv.ref)
        await rejected_topic.send(key=inv.invoice_id.encode(), value=encode(rej))


def _manifest(rec: PackedBatch) -> PackageManifest:
    return PackageManifest.from_dict(dataclasses.asdict(rec))


def _resumable(rec: PackedBatch) -> BatchSession | None:
    """The journaled open session of this batch while its upload window lasts."""
    progress = journal.get(rec.batch_id)
    if progress is None or progress.step != OPENED or not progress.session_ref:
        return None
    opened = progress.opened
    opened_at = dt.datetime.fromisoformat(opened["opened_at"])
    window = UPLOAD_WINDOW_PER_PART * len(rec.parts) - dt.timedelta(minutes=2)
    if now_utc() - opened_at > window:
        return None
    uploads = tuple(PartUpload(u["ordinal"], u["method"], u["url"], u.get("headers") or {})
                    for u in opened["uploads"])
    return BatchSession(progress.session_ref, uploads, opened_at)


async def _open(rec: PackedBatch, manifest: PackageManifest) -> BatchSession:
    client = clients.client(rec.seller_nip)
    await _journal(rec, OPENING)
    spec = batch_spec(manifest, offline_mode=rec.offline_mode, public_key_id=rec.public_key_id)
    session = await client.open_batch_session(spec)
    await _journal(rec, OPENED, session.reference_number,
                   opened_at=session.opened_at.isoformat(),
                   uploads=[{"ordinal": u.ordinal, "method": u.method, "url": u.url,
                             "headers": dict(u.headers)} for u in session.part_uploads])
    return session


async def submit_batch(rec: PackedBatch) -> None:
    """Drive one batch to `closed` (or `failed`); raises KsefUnavailable to retry later."""
    progress = journal.get(rec.batch_id)
    if progress is not None and progress.step in FINAL:
        return
    try:
        spool = batch_spool(SPOOL_ROOT, rec)  # rec.spool_dir is never trusted as a path
    except ValueError as exc:
        await _journal(rec, FAILED, reason="bad-manifest", error=str(exc))
        await _reject_all(rec, 500, "bad-manifest",
                          f"batch id {rec.batch_id!r} is not a spool directory name")
        return
    manifest = _manifest(rec)
    files = part_files(manifest, spool)
    client = clients.client(rec.seller_nip)
    session = _resumable(rec)
    if any(not p.exists() for p in files.values()):
        # Another worker packed it, or the disk was lost: rebuild the identical archive
        # from Kafka, encrypt it under a fresh key, and open a new session for it.
        try:
            rec, manifest = await _rebuild(rec, manifest, client)
        except (LookupError, RebuildMismatch) as exc:
            await _journal(rec, FAILED, reason="spool-lost", error=str(exc))
            await _reject_all(rec, 500, "spool-lost",
                              f"batch {rec.batch_id} cannot be rebuilt from Kafka ({exc}); "
                              "replay these invoices to repack them")
            return
        spool = batch_spool(SPOOL_ROOT, rec, rebuilt=True)
        files = part_files(manifest, spool)
        session = None
    if session is None:
        session = await _open(rec, manifest)
    done = journal.get(rec.batch_id)
    already = frozenset(done.parts_done) if done else frozenset()
    todo = frozenset(p.ordinal for p in manifest.parts) - already
    ref = session.reference_number

    async def uploaded(ordinal: int) -> None:
        await _journal(rec, PART_UPLOADED, ref, ordinal=ordinal)
        metrics.parts_uploaded.inc()

    opened_here.add(ref)  # open in KSeF until closed (a failed upload keeps it open)
    if todo:
        await client.upload_parts(session, files, only=todo, sizes=part_sizes(manifest),
                                  on_uploaded=uploaded)
    await client.close_batch_session(ref)
    opened_here.discard(ref)
    metrics.count_out("submit", len(rec.invoices))
    await _journal(rec, CLOSED, ref, invoice_count=len(rec.invoices),
                   invoices=[[i.invoice_id, i.sha256, i.invoice_number] for i in rec.invoices])
    drop_batch_spool(SPOOL_ROOT, rec)  # as packed and as rebuilt, under SPOOL_ROOT only
    log.info("batch session closed", batch_id=rec.batch_id, session_ref=ref,
             seller_nip=rec.seller_nip, invoices=len(rec.invoices), parts=len(rec.parts))


def _rebuild_sync(manifest: PackageManifest, directory: Path, public_key: Any) -> Any:
    """Blocking part of a rebuild: fetch, decrypt, re-archive, verify, encrypt parts."""
    reader = SequentialReader(kafka_settings)

    def plaintext(ref: Any) -> tuple[bytes, bytes | None]:
        opened = open_sealed(reader.get(ref), keyrings.get())
        return opened.invoice(), opened.deflated

    try:
        # Locked against a spool sweep; the package is written encrypted under a key that
        # lives only here (docs/security-spool.md).
        with BatchLock(directory):
            path = directory / manifest.format.file_name
            spool_key = SpoolKey.generate()
            digest = rebuild_package(manifest, plaintext, path, spool_key=spool_key)
            return seal_package(path, digest, spool_key=spool_key, batch_id=manifest.batch_id,
                                fmt=manifest.format, level=manifest.deflate_level,
                                entries=manifest.entries, public_key=public_key,
                                limits=BatchLimits(max_part_bytes=max(
                                    p.plain_size for p in manifest.parts)),
                                keep_package=False)
    finally:
        reader.close()


async def _rebuild(rec: PackedBatch, manifest: PackageManifest, client: Any
                   ) -> tuple[PackedBatch, PackageManifest]:
    mf_key = await client.encryption_key()
    directory = batch_spool(SPOOL_ROOT, rec, rebuilt=True)
    packaged = await asyncio.to_thread(_rebuild_sync, manifest, directory, mf_key.key)
    data = dataclasses.asdict(rec)
    data.update(packaged.manifest.to_dict())
    data.update(spool_dir=str(packaged.directory), public_key_id=mf_key.public_key_id,
                invoices=dataclasses.asdict(rec)["invoices"])
    rebuilt = from_dict(PackedBatch, data)
    log.info("batch rebuilt from Kafka", batch_id=rec.batch_id,
             package_sha256=rebuilt.package_sha256, parts=len(rebuilt.parts))
    await _journal(rec, "rebuilt", package_sha256=rebuilt.package_sha256)
    return rebuilt, packaged.manifest


async def _alert(alert: Alert | None) -> None:
    if alert is not None:
        log.warning("credential alert", kind=alert.kind, seller_nip=alert.seller_nip,
                    reason=alert.details.get("reason"))
        await publish_alert(alert)


async def _key_missing(key_id: str, seller_nip: str, invoice_id: str | None = None) -> None:
    """A record to rebuild or correct is sealed under a key the keyring lacks: it waits
    (retried, the keyring file re-read) with one alert per key id, never rejected."""
    if key_id in missing_keys:
        return
    missing_keys.add(key_id)
    log.error("invoice sealed under a key the keyring lacks: waits, not rejected",
              key_id=key_id, seller_nip=seller_nip, invoice_id=invoice_id)
    await publish_alert(missing_key_alert(key_id, "submit", now_utc(), invoice_id=invoice_id,
                                          seller_nip=seller_nip,
                                          keyring_ids=keyrings.get().key_ids))


async def _release(rec: PackedBatch, hold_reason: str, release: HeldRelease) -> None:
    """Reject a held batch on an operator's request."""
    reason = release_reason(hold_reason)
    await _journal(rec, FAILED, reason=reason, request_id=release.request_id)
    await _reject_all(rec, 410, reason,
                      f"held because seller context {rec.seller_nip} could not authenticate "
                      f"to KSeF ({hold_reason}); rejected on operator request "
                      f"{release.request_id}" + (f" by {release.requested_by}"
                                                 if release.requested_by else ""))
    log.warning("held batch rejected on operator request", batch_id=rec.batch_id,
                seller_nip=rec.seller_nip, invoices=len(rec.invoices), reason=reason)


async def _held(rec: PackedBatch, decision: Decision) -> str:
    """A batch whose context cannot authenticate: held, or released by an operator."""
    await _alert(holds.hold(rec.seller_nip, decision, now_utc()))
    release = releases.get(rec.seller_nip)
    if release_covers(release, rec.seller_nip, rec.packed_at):
        assert release is not None
        await _release(rec, decision.reason, release)
        return SETTLED
    log.warning("context cannot authenticate: batch held", batch_id=rec.batch_id,
                seller_nip=rec.seller_nip, reason=decision.reason, retry_in_s=RECHECK_S)
    return HELD


async def _submit_with_policy(rec: PackedBatch) -> str:
    """SETTLED (closed, failed or rejected), RETRY (KSeF trouble) or HELD (credentials)."""
    try:
        await submit_batch(rec)
    except MissingKeyError as exc:  # a rebuild from Kafka needs a key not here yet
        keyrings.refresh()
        await _key_missing(exc.key_id, rec.seller_nip)
        return RETRY
    except (KsefError, LookupError) as exc:
        decision = decide(exc)
        if decision.action == "hold":
            return await _held(rec, decision)
        if decision.action == "reject":
            await _journal(rec, FAILED, reason="ksef-refused", error=str(exc))
            await _reject_all(rec, decision.code, decision.reason, decision.message)
            return SETTLED
        log.warning("KSeF unavailable; batch will be retried", batch_id=rec.batch_id,
                    error=decision.message)
        return RETRY
    await _alert(holds.ok(rec.seller_nip, now_utc()))
    return SETTLED


HOLD_PROBE_S = stage_settings.hold_probe_s


async def _hold_while_announced() -> None:
    """During an announced failure/maintenance open no session; probe KSeF meanwhile so
    the backlog drains as soon as it answers again (and the announcement has ended).

    A worker that has not read `ksef.mode` yet does not know of an announcement in force:
    it waits for the follower first, or a restart during an outage would open sessions.
    """
    await follower.wait_ready()
    logged = False
    while should_hold_sessions(follower.state):
        if not logged:
            log.warning("KSeF outage announced: holding new sessions",
                        state=follower.state.state if follower.state else None,
                        queued=len(waiting))
            logged = True
        with contextlib.suppress(KsefError):
            await clients.public().encryption_key()  # a probe that counts as health
        await asyncio.sleep(HOLD_PROBE_S)
    if logged:
        log.info("KSeF outage over: draining the backlog", queued=len(waiting))


def _not_held() -> Callable[[PackedBatch], bool]:
    now = now_utc()
    return lambda batch: holds.ready(batch.seller_nip, now)


async def _dispatcher() -> None:
    backoff = Backoff(1.0, 30.0)
    while True:
        await waiting.not_empty()
        await _hold_while_announced()
        item = waiting.pop(ready=_not_held())
        if item is None:  # all queued batches are of held contexts (or taken)
            await waiting.changed(holds.next_retry(now_utc()))
            continue
        rec = item.batch
        try:
            await _journal_loaded()
            hold = holds.held().get(rec.seller_nip)
            release = releases.get(rec.seller_nip)
            if hold is not None and release_covers(release, rec.seller_nip, rec.packed_at):
                assert release is not None
                await _release(rec, hold.reason, release)
                outcome = SETTLED
            else:
                outcome = await _submit_with_policy(rec)
        except Exception:
            log.exception("submit failed unexpectedly; retrying", batch_id=rec.batch_id)
            outcome = RETRY
        if outcome == SETTLED:
            backoff.reset()
            stream = state["stream"]
            for done in waiting.settled(rec.batch_id):
                if stream is not None:
                    await stream.ack(done)
        elif outcome == HELD:
            waiting.put_back(item)  # skipped until its context's recheck; others go on
        else:
            waiting.put_back(item)
            await backoff.wait()


@app.task
async def watch_credential_files() -> None:
    """A changed credentials file (or a file it names) retries held contexts at once."""
    last = clients.credentials.stamps()
    while True:
        await asyncio.sleep(FILES_POLL_S)
        try:
            now = clients.credentials.stamps()
        except Exception:
            log.exception("cannot stat the credential files")
            continue
        if now != last:
            last = now
            if holds.held():
                log.info("credential files changed: held contexts are tried again",
                         held=sorted(holds.held()))
                holds.wake()
                waiting.poke()


@app.task
async def check_credential_expiry() -> None:
    """At start and every KSEF_CREDENTIAL_CHECK_S: certificates expiring within 30 days,
    contexts still on a token from 2026-12-01, unusable entries (one alert per day)."""
    while True:
        try:
            for alert in expiry.due(clients.credentials.contexts(), now_utc()):
                await _alert(alert)
        except Exception:
            log.exception("credential expiry check failed")
        await asyncio.sleep(CREDENTIAL_CHECK_S)


@app.agent(packed_topic, name="submit")
async def submit(stream: faust.StreamT[Any]) -> None:
    manual = stream.noack()
    state["stream"] = manual
    await _journal_loaded()
    if not state["dispatchers"]:
        state["dispatchers"] = [asyncio.ensure_future(_dispatcher()) for _ in range(CONCURRENCY)]
    async for event in manual.events():
        try:
            rec = decode(PackedBatch, event.value)
        except (ValueError, TypeError) as exc:
            log.error("undecodable manifest skipped", error=type(exc).__name__,
                      offset=event.message.offset)
            await manual.ack(event)
            continue
        progress = journal.get(rec.batch_id)
        if progress is not None and progress.step in FINAL:
            await manual.ack(event)
            continue
        metrics.count_in("submit", len(rec.invoices))
        waiting.offer(rec, event)  # a repeat waits with its batch's first delivery


@app.on_partitions_revoked.connect
async def _leave_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
    """Batches not started here go to the partitions' new owner, not to both workers."""
    left = waiting.leave_revoked((tp.topic, tp.partition) for tp in revoked)
    if left:
        log.info("queued batches left to their partitions' new owner", batches=len(left))


# --- interactive lane: technical corrections -------------------------------------------

corrections_topic = topic(CORRECTIONS)


def correction_id(inv: SealedInvoice) -> str:
    """The journal id of one correction: the same for every attempt and after a restart."""
    digest = hashlib.sha256(f"{inv.invoice_id}\0{inv.sha256}".encode()).hexdigest()
    return f"{inv.seller_nip}-online-{digest[:16]}"


async def _in_session(client: Any, ref: str, sha256: str) -> bool:
    """Whether KSeF registered an invoice with this hash in the session."""
    async for result in client.session_invoices(ref):
        if result.invoice_hash == sha256:
            return True
    return False


async def _send_correction(inv: SealedInvoice, record: bytes) -> None:
    """One interactive session per correction: KSeF allows a technical correction only
    there, once, with offlineMode true and the hash of the rejected original.

    KSeF refuses a second copy of a correction it took (21166), so an attempt after one
    whose answer was lost (or after a crash) first asks KSeF whether the earlier session
    has it. A correction journaled closed is never sent again: a replay of it gets the
    first session announced once more, so the upo stage reports KSeF's verdict again
    (a replay ends with the same outcome, as in the batch lane).
    """
    batch_id = correction_id(inv)
    progress = journal.get(batch_id)
    if progress is not None and progress.step in FINAL:
        if progress.session_ref:
            await _answer_again(inv, batch_id, progress.session_ref, progress.origin)
        return
    client = clients.client(inv.seller_nip)
    earlier = progress.session_ref if progress is not None else None
    if earlier and await _in_session(client, earlier, inv.sha256):
        log.info("correction found in its earlier session; not sent again",
                 invoice_id=inv.invoice_id, session_ref=earlier)
        await _close_after_send(client, earlier)
        await _journal_correction_closed(inv, batch_id, earlier)
        return
    xml = open_sealed(record, keyrings.get()).invoice()
    await _journal_step(batch_id, inv.seller_nip, OPENING, None, "online", {})
    session = await client.open_online_session()
    ref = session.reference_number
    await _journal_step(batch_id, inv.seller_nip, OPENED, ref, "online", {"opened_at": iso()})
    try:
        await client.send_invoice(session, xml, offline_mode=True,
                                  hash_of_corrected_invoice=inv.technical_correction_of)
    except BaseException:
        with contextlib.suppress(KsefError):
            await client.close_online_session(ref)
        raise
    await _close_after_send(client, ref)
    await _journal_correction_closed(inv, batch_id, ref)
    metrics.count_out("submit-interactive")
    log.info("technical correction sent", invoice_id=inv.invoice_id, session_ref=ref)


async def _answer_again(inv: SealedInvoice, batch_id: str, ref: str,
                        sent_for: str | None) -> None:
    """A correction already sent, delivered again. The same `.submitted` record (pack
    forwards it again after a crash or a rebalance, or validate sealed it twice) adds
    nothing; a producer's replay (a new record) gets KSeF's verdict on the first send
    once more, once per replay record: the upo stage reports that session again."""
    origin = origin_text(inv.origin)
    if origin is not None and origin == sent_for:
        log.info("correction delivered again; it was sent already", invoice_id=inv.invoice_id,
                 session_ref=ref)
        return
    tag = (hashlib.sha256(origin.encode()).hexdigest()[:16] if origin is not None
           else uuid.uuid4().hex[:16])
    again_id = f"{batch_id}-again-{tag}"
    answered = journal.get(again_id)
    if answered is not None and answered.step in FINAL:
        log.info("replay of a sent correction answered already", invoice_id=inv.invoice_id,
                 session_ref=ref)
        return
    log.info("correction already sent; its outcome is reported again",
             invoice_id=inv.invoice_id, session_ref=ref)
    await _journal_correction_closed(inv, again_id, ref, again=True)


async def _journal_correction_closed(inv: SealedInvoice, batch_id: str, ref: str,
                                    again: bool = False) -> None:
    details: dict[str, Any] = {
        "invoice_count": 1, "invoices": [[inv.invoice_id, inv.sha256, inv.invoice_number]]}
    origin = origin_text(inv.origin)
    if origin is not None:  # the `.submitted` record this answers (see _answer_again)
        details["origin"] = origin
    if again:  # the upo stage reports it even though the outcome is on the topic already
        details["again"] = True
    await _journal_step(batch_id, inv.seller_nip, CLOSED, ref, "online", details)


async def _close_after_send(client: Any, ref: str) -> None:
    """KSeF has the correction once it was sent: a close that fails is tried again (it is
    idempotent), never the correction, which KSeF would refuse the second time."""
    backoff = Backoff(1.0, 60.0)
    while True:
        try:
            await client.close_online_session(ref)
            return
        except (KsefUnavailable, KsefRateLimited) as exc:
            log.warning("correction sent; closing its session waits for KSeF",
                        session_ref=ref, error=str(exc), retry_in_s=backoff.next_s)
            await backoff.wait()


def _correction_rejection(inv: SealedInvoice, code: int, reason: str, message: str
                          ) -> Rejection:
    return build_rejection(invoice_id=inv.invoice_id, stage="submit", code=code,
                           reason=reason, message=message, rejected_at=iso(),
                           seller_nip=inv.seller_nip, invoice_number=inv.invoice_number,
                           sha256=inv.sha256, origin=inv.origin)


async def _correction_held(inv: SealedInvoice, decision: Decision) -> bool:
    """A correction whose context cannot authenticate waits like a batch (True), unless
    an operator released the context's held invoices (rejected: False)."""
    await _alert(holds.hold(inv.seller_nip, decision, now_utc()))
    release = releases.get(inv.seller_nip)
    if release_covers(release, inv.seller_nip, inv.sealed_at):
        assert release is not None
        reason = release_reason(decision.reason)
        rej = _correction_rejection(
            inv, 410, reason, f"technical correction held because seller context "
            f"{inv.seller_nip} could not authenticate ({decision.reason}); rejected on "
            f"operator request {release.request_id}")
        await rejected_topic.send(key=inv.invoice_id.encode(), value=encode(rej))
        return False
    log.warning("context cannot authenticate: correction held", invoice_id=inv.invoice_id,
                seller_nip=inv.seller_nip, reason=decision.reason)
    while not holds.ready(inv.seller_nip, now_utc()):
        await asyncio.sleep(1.0)  # until the recheck, a file change or a release
    return True


@app.agent(corrections_topic, name="submit-interactive")
async def interactive(stream: faust.StreamT[Any]) -> None:
    await _journal_loaded()
    async for event in stream.events():
        try:
            inv = read_meta(event.value)
        except (ValueError, TypeError):
            continue  # the pack stage forwards only records it could read
        if not inv.technical_correction_of:
            continue
        metrics.count_in("submit-interactive")
        backoff = Backoff(1.0, 60.0)
        while True:
            try:
                await _journal_loaded()
                await _send_correction(inv, event.value)
                await _alert(holds.ok(inv.seller_nip, now_utc()))
                break
            except MissingKeyError as exc:  # waits for the keyring file to bring the key
                if not keyrings.has(exc.key_id):
                    await _key_missing(exc.key_id, inv.seller_nip, inv.invoice_id)
                    await asyncio.sleep(KEY_RECHECK_S)
            except (KsefUnavailable, KsefRateLimited) as exc:
                log.warning("correction waits for KSeF", invoice_id=inv.invoice_id,
                            error=str(exc), retry_in_s=backoff.next_s)
                await backoff.wait()
            except (KsefError, LookupError) as exc:
                decision = decide(exc)
                if decision.action == "hold":
                    if await _correction_held(inv, decision):
                        continue
                    break
                rej = _correction_rejection(
                    inv, getattr(exc, "status", 500) or 500, "correction-refused",
                    f"technical correction not accepted: {exc}")
                await rejected_topic.send(key=inv.invoice_id.encode(), value=encode(rej))
                break
