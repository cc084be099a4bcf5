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

What both lanes of the stage share (clients, journal, holds, keyring) is the stage's
context (`context.stage_context()`). Importing this module loads the interactive lane
for technical corrections too (`correction_lane`, agent `submit-interactive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
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
    PartUpload,
)
from pipeline.ksef_api.manifest import batch_spec, part_files, part_sizes
from pipeline.modes.snapshot import should_hold_sessions
from pipeline.runtime import logs
from pipeline.runtime.app import app, kafka_settings, topic, worker_settings
from pipeline.runtime.backoff import Backoff
from pipeline.runtime.deliveries import held_for_ack
from pipeline.runtime.spool_paths import batch_spool, drop_batch_spool, spool_root
from pipeline.runtime.topic_reads import SequentialReader
from pipeline.stages.s3_submit.batch_queue import BatchQueue
from pipeline.stages.s3_submit.context import stage_context
from pipeline.stages.s3_submit.credential_hold import (
    Decision,
    decide,
    release_covers,
    release_reason,
)
from topics.catalog import PACKED
from topics.codec import encode, from_dict
from topics.packed_rows import packed_head
from topics.records import HeldRelease, PackedBatch
from topics.rejections import build_rejection
from topics.sealed import open_sealed
from topics.session_journal import (
    CLOSED,
    FAILED,
    FINAL,
    OPENED,
    OPENING,
    PART_UPLOADED,
)

log = logs.get(__name__)

packed_topic = topic(PACKED)

ctx = stage_context()
CONCURRENCY = ctx.settings.concurrency
UPLOAD_WINDOW_PER_PART = dt.timedelta(minutes=20)
# Batch directories are derived from this root and the batch id, never from a record.
SPOOL_ROOT = spool_root(worker_settings)
waiting = BatchQueue()
state: dict[str, Any] = {"stream": None, "dispatchers": []}

RECHECK_S = ctx.settings.credential_recheck_s
CREDENTIAL_CHECK_S = ctx.settings.credential_check_s
FILES_POLL_S = 1.0
opened_here: set[str] = set()  # batch sessions this worker opened and has not closed yet
ctx.metrics.on_scrape("submit", lambda m: m.sessions_open.set(len(opened_here)))
SETTLED, RETRY, HELD = "settled", "retry", "held"


def _on_release(release: HeldRelease) -> None:
    """An operator's release: try the context's held batches at once (they are rejected
    if it still cannot authenticate)."""
    log.warning("operator release of held invoices", seller_nip=release.seller_nip,
                request_id=release.request_id, requested_by=release.requested_by)
    ctx.holds.wake(release.seller_nip)
    waiting.poke()


ctx.releases.on_release = _on_release


async def _journal(rec: PackedBatch, step: str, session_ref: str | None = None,
                   **details: Any) -> None:
    await ctx.journal_step(rec.batch_id, rec.seller_nip, step, session_ref, "batch", details)


async def _reject_all(rec: PackedBatch, code: int, reason: str, message: str,
                      session_ref: str | None = None) -> None:
    for inv in waiting.invoices(rec):
        rej = build_rejection(invoice_id=inv.invoice_id, stage="submit", code=code,
                              reason=reason, message=message, rejected_at=iso(),
                              seller_nip=rec.seller_nip, invoice_number=inv.invoice_number,
                              sha256=inv.sha256, session_ref=session_ref, origin=inv.ref)
        await ctx.rejected_topic.send(key=inv.invoice_id.encode(), value=encode(rej))


def _manifest(rec: PackedBatch) -> PackageManifest:
    return PackageManifest.from_dict(dataclasses.asdict(rec))


def _resumable(rec: PackedBatch) -> BatchSession | None:
    """The journaled open session of this batch while its upload window lasts."""
    progress = ctx.journal.get(rec.batch_id)
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
    client = ctx.clients.client(rec.seller_nip)
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
    progress = ctx.journal.get(rec.batch_id)
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
    client = ctx.clients.client(rec.seller_nip)
    session = _resumable(rec)
    if any(not p.exists() for p in files.values()):
        # Another worker packed it, or the disk was lost: rebuild the identical archive
        # from Kafka, encrypt it under a fresh key, and open a new session for it.
        try:
            rec, manifest = await _rebuild(rec, client)
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
    done = ctx.journal.get(rec.batch_id)
    already = frozenset(done.parts_done) if done else frozenset()
    todo = frozenset(p.ordinal for p in manifest.parts) - already
    ref = session.reference_number

    async def uploaded(ordinal: int) -> None:
        await _journal(rec, PART_UPLOADED, ref, ordinal=ordinal)
        ctx.metrics.parts_uploaded.inc()

    opened_here.add(ref)  # open in KSeF until closed (a failed upload keeps it open)
    if todo:
        await client.upload_parts(session, files, only=todo, sizes=part_sizes(manifest),
                                  on_uploaded=uploaded)
    await client.close_batch_session(ref)
    opened_here.discard(ref)
    invoices = waiting.journal_rows(rec)
    ctx.metrics.count_out("submit", len(invoices))
    await _journal(rec, CLOSED, ref, invoice_count=len(invoices), invoices=invoices)
    drop_batch_spool(SPOOL_ROOT, rec)  # as packed and as rebuilt, under SPOOL_ROOT only
    log.info("batch session closed", batch_id=rec.batch_id, session_ref=ref,
             seller_nip=rec.seller_nip, invoices=waiting.count(rec), parts=len(rec.parts))


def _rebuild_sync(manifest: PackageManifest, directory: Path, public_key: Any) -> Any:
    """Blocking part of a rebuild: fetch, decrypt, re-archive, verify, encrypt parts."""
    reader = SequentialReader(kafka_settings)

    def plaintext(ref: Any) -> tuple[bytes, bytes | None]:
        opened = open_sealed(reader.get(ref), ctx.keyrings.get())
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


async def _rebuild(rec: PackedBatch, client: Any) -> tuple[PackedBatch, PackageManifest]:
    mf_key = await client.encryption_key()
    directory = batch_spool(SPOOL_ROOT, rec, rebuilt=True)
    full = dataclasses.replace(rec, invoices=waiting.invoices(rec))
    manifest = _manifest(full)  # every entry: `rec` may be the head it was queued as
    packaged = await asyncio.to_thread(_rebuild_sync, manifest, directory, mf_key.key)
    data = dataclasses.asdict(full)
    invoices = data["invoices"]  # the manifest's own list below has other fields
    data.update(packaged.manifest.to_dict())
    data.update(spool_dir=str(packaged.directory), public_key_id=mf_key.public_key_id,
                invoices=invoices)
    rebuilt = from_dict(PackedBatch, data)
    log.info("batch rebuilt from Kafka", batch_id=rec.batch_id,
             package_sha256=rebuilt.package_sha256, parts=len(rebuilt.parts))
    await _journal(rec, "rebuilt", package_sha256=rebuilt.package_sha256)
    return rebuilt, packaged.manifest


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
                seller_nip=rec.seller_nip, invoices=waiting.count(rec), reason=reason)


async def _held(rec: PackedBatch, decision: Decision) -> str:
    """A batch whose context cannot authenticate: held, or released by an operator."""
    await ctx.alert(ctx.holds.hold(rec.seller_nip, decision, now_utc()))
    release = ctx.releases.get(rec.seller_nip)
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
        ctx.keyrings.refresh()
        await ctx.key_missing(exc.key_id, rec.seller_nip)
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
    await ctx.alert(ctx.holds.ok(rec.seller_nip, now_utc()))
    return SETTLED


HOLD_PROBE_S = ctx.settings.hold_probe_s


async def _hold_while_announced() -> None:
    """During an announced failure/maintenance open no session; probe KSeF meanwhile so
    the backlog drains as soon as it answers again (and the announcement has ended).

    A worker that has not read `ksef.mode` yet does not know of an announcement in force:
    it waits for the follower first, or a restart during an outage would open sessions.
    """
    await ctx.follower.wait_ready()
    logged = False
    while should_hold_sessions(ctx.follower.state):
        if not logged:
            log.warning("KSeF outage announced: holding new sessions",
                        state=ctx.follower.state.state if ctx.follower.state else None,
                        queued=len(waiting))
            logged = True
        with contextlib.suppress(KsefError):
            await ctx.clients.public().encryption_key()  # a probe that counts as health
        await asyncio.sleep(HOLD_PROBE_S)
    if logged:
        log.info("KSeF outage over: draining the backlog", queued=len(waiting))


def _not_held() -> Callable[[PackedBatch], bool]:
    now = now_utc()
    return lambda batch: ctx.holds.ready(batch.seller_nip, now)


async def _dispatcher() -> None:
    backoff = Backoff(1.0, 30.0)
    while True:
        await waiting.not_empty()
        await _hold_while_announced()
        item = waiting.pop(ready=_not_held())
        if item is None:  # all queued batches are of held contexts (or taken)
            await waiting.changed(ctx.holds.next_retry(now_utc()))
            continue
        rec = item.batch
        try:
            await ctx.journal_loaded()
            hold = ctx.holds.held().get(rec.seller_nip)
            release = ctx.releases.get(rec.seller_nip)
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
    last = ctx.clients.credentials.stamps()
    while True:
        await asyncio.sleep(FILES_POLL_S)
        try:
            now = ctx.clients.credentials.stamps()
        except Exception:
            log.exception("cannot stat the credential files")
            continue
        if now != last:
            last = now
            if ctx.holds.held():
                log.info("credential files changed: held contexts are tried again",
                         held=sorted(ctx.holds.held()))
                ctx.holds.wake()
                waiting.poke()


@app.task
async def check_credential_expiry() -> None:
    """At start and every KSEF_CREDENTIAL_CHECK_S: certificates expiring within 30 days,
    contexts still on a token from 2026-12-01, unusable entries (one alert per day)."""
    while True:
        try:
            for alert in ctx.expiry.due(ctx.clients.credentials.contexts(), now_utc()):
                await ctx.alert(alert)
        except Exception:
            log.exception("credential expiry check failed")
        await asyncio.sleep(CREDENTIAL_CHECK_S)


@app.agent(packed_topic, name="submit")
async def submit(stream: faust.StreamT[Any]) -> None:
    manual = stream.noack()
    state["stream"] = manual
    await ctx.journal_loaded()
    if not state["dispatchers"]:
        state["dispatchers"] = [asyncio.ensure_future(_dispatcher()) for _ in range(CONCURRENCY)]
    async for event in manual.events():
        raw = event.value
        try:
            head, count = packed_head(raw)  # every invoice checked, the first one kept
        except (ValueError, TypeError) as exc:
            log.error("undecodable manifest skipped", error=type(exc).__name__,
                      offset=event.message.offset)
            await manual.ack(event)
            continue
        progress = ctx.journal.get(head.batch_id)
        if progress is not None and progress.step in FINAL:
            await manual.ack(event)
            continue
        ctx.metrics.count_in("submit", count)
        # A repeat waits with its batch's first delivery. The batch waits as its head and
        # the manifest's bytes, not as thousands of decoded invoices (`BatchQueue`).
        waiting.offer(head, held_for_ack(event), raw, count)


@app.on_partitions_revoked.connect
async def _leave_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
    """Batches not started here go to the partitions' new owner, not to both workers."""
    left = waiting.leave_revoked((tp.topic, tp.partition) for tp in revoked)
    if left:
        log.info("queued batches left to their partitions' new owner", batches=len(left))


# The stage's second lane (agent `submit-interactive`): loaded with this one, after it,
# so `--stages submit` runs both and the agents start in the order they always did.
from pipeline.stages.s3_submit import correction_lane  # noqa: E402, F401
