"""submit stage, interactive lane: technical corrections from `ksef.invoices.corrections`.

The pack stage forwards a sealed technical correction here instead of into a batch. Each
goes alone in one interactive session (KSeF takes a technical correction only there, once,
with offlineMode true and the hash of the rejected original), every step journaled on
`ksef.sessions` like a batch's, so the upo stage settles it the same way. A context that
cannot authenticate holds its corrections as it holds its batches (`credential_hold`).

What this lane shares with the batch lane (`submit`) comes from the stage's context
(`context.stage_context()`): the KSeF clients, the journal, the holds and releases,
the keyring.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from typing import Any

import faust

from pipeline.clock import iso, now_utc
from pipeline.ksef.keyring import MissingKeyError
from pipeline.ksef_api import KsefError, KsefRateLimited, KsefUnavailable
from pipeline.runtime import logs
from pipeline.runtime.app import app, topic
from pipeline.runtime.backoff import Backoff
from pipeline.stages.s3_submit.context import SubmitContext, stage_context
from pipeline.stages.s3_submit.credential_hold import (
    Decision,
    decide,
    release_covers,
    release_reason,
)
from topics.catalog import CORRECTIONS
from topics.codec import encode
from topics.records import Rejection, SealedInvoice, origin_text
from topics.rejections import build_rejection
from topics.sealed import open_sealed, read_meta
from topics.session_journal import CLOSED, FINAL, OPENED, OPENING

log = logs.get(__name__)

corrections_topic = topic(CORRECTIONS)
KEY_RECHECK_S = 5.0  # a correction sealed under a key the keyring lacks is retried this often
# Built at import, not on the first record: its followers are app tasks, registered before
# the app starts (a no-op when the batch lane built it already).
stage_context()


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


async def _send_correction(ctx: SubmitContext, inv: SealedInvoice, record: bytes) -> None:
    """One interactive session per correction: KSeF allows a technical correction only
    there, once, with offlineMode true and the hash of the rejected original.

    KSeF refuses a second copy of a correction it took (21166), so an attempt after one
    whose answer was lost (or after a crash) first asks KSeF whether the earlier session
    has it. A correction journaled closed is never sent again: a replay of it gets the
    first session announced once more, so the upo stage reports KSeF's verdict again
    (a replay ends with the same outcome, as in the batch lane).
    """
    batch_id = correction_id(inv)
    progress = ctx.journal.get(batch_id)
    if progress is not None and progress.step in FINAL:
        if progress.session_ref:
            await _answer_again(ctx, inv, batch_id, progress.session_ref, progress.origin)
        return
    client = ctx.clients.client(inv.seller_nip)
    earlier = progress.session_ref if progress is not None else None
    if earlier and await _in_session(client, earlier, inv.sha256):
        log.info("correction found in its earlier session; not sent again",
                 invoice_id=inv.invoice_id, session_ref=earlier)
        await _close_after_send(client, earlier)
        await _journal_correction_closed(ctx, inv, batch_id, earlier)
        return
    xml = open_sealed(record, ctx.keyrings.get()).invoice()
    await ctx.journal_step(batch_id, inv.seller_nip, OPENING, None, "online", {})
    session = await client.open_online_session()
    ref = session.reference_number
    await ctx.journal_step(batch_id, inv.seller_nip, OPENED, ref, "online",
                           {"opened_at": iso()})
    try:
        await client.send_invoice(session, xml, offline_mode=True,
                                  hash_of_corrected_invoice=inv.technical_correction_of)
    except BaseException:
        with contextlib.suppress(KsefError):
            await client.close_online_session(ref)
        raise
    await _close_after_send(client, ref)
    await _journal_correction_closed(ctx, inv, batch_id, ref)
    ctx.metrics.count_out("submit-interactive")
    log.info("technical correction sent", invoice_id=inv.invoice_id, session_ref=ref)


async def _answer_again(ctx: SubmitContext, inv: SealedInvoice, batch_id: str, ref: str,
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
    answered = ctx.journal.get(again_id)
    if answered is not None and answered.step in FINAL:
        log.info("replay of a sent correction answered already", invoice_id=inv.invoice_id,
                 session_ref=ref)
        return
    log.info("correction already sent; its outcome is reported again",
             invoice_id=inv.invoice_id, session_ref=ref)
    await _journal_correction_closed(ctx, inv, again_id, ref, again=True)


async def _journal_correction_closed(ctx: SubmitContext, inv: SealedInvoice, batch_id: str,
                                     ref: str, again: bool = False) -> None:
    details: dict[str, Any] = {
        "invoice_count": 1, "invoices": [[inv.invoice_id, inv.sha256, inv.invoice_number]]}
    origin = origin_text(inv.origin)
    if origin is not None:  # the `.submitted` record this answers (see _answer_again)
        details["origin"] = origin
    if again:  # the upo stage reports it even though the outcome is on the topic already
        details["again"] = True
    await ctx.journal_step(batch_id, inv.seller_nip, CLOSED, ref, "online", details)


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


async def _correction_held(ctx: SubmitContext, inv: SealedInvoice, decision: Decision
                           ) -> bool:
    """A correction whose context cannot authenticate waits like a batch (True), unless
    an operator released the context's held invoices (rejected: False)."""
    await ctx.alert(ctx.holds.hold(inv.seller_nip, decision, now_utc()))
    release = ctx.releases.get(inv.seller_nip)
    if release_covers(release, inv.seller_nip, inv.sealed_at):
        assert release is not None
        reason = release_reason(decision.reason)
        rej = _correction_rejection(
            inv, 410, reason, f"technical correction held because seller context "
            f"{inv.seller_nip} could not authenticate ({decision.reason}); rejected on "
            f"operator request {release.request_id}")
        await ctx.rejected_topic.send(key=inv.invoice_id.encode(), value=encode(rej))
        return False
    log.warning("context cannot authenticate: correction held", invoice_id=inv.invoice_id,
                seller_nip=inv.seller_nip, reason=decision.reason)
    while not ctx.holds.ready(inv.seller_nip, now_utc()):
        await asyncio.sleep(1.0)  # until the recheck, a file change or a release
    return True


@app.agent(corrections_topic, name="submit-interactive")
async def interactive(stream: faust.StreamT[Any]) -> None:
    ctx = stage_context()
    await ctx.journal_loaded()
    async for event in stream.events():
        try:
            inv = read_meta(event.value)
        except (ValueError, TypeError):
            continue  # the pack stage forwards only records it could read
        if not inv.technical_correction_of:
            continue
        ctx.metrics.count_in("submit-interactive")
        backoff = Backoff(1.0, 60.0)
        while True:
            try:
                await ctx.journal_loaded()
                await _send_correction(ctx, inv, event.value)
                await ctx.alert(ctx.holds.ok(inv.seller_nip, now_utc()))
                break
            except MissingKeyError as exc:  # waits for the keyring file to bring the key
                if not ctx.keyrings.has(exc.key_id):
                    await ctx.key_missing(exc.key_id, inv.seller_nip, inv.invoice_id)
                    await asyncio.sleep(KEY_RECHECK_S)
            except (KsefUnavailable, KsefRateLimited) as exc:
                log.warning("correction waits for KSeF", invoice_id=inv.invoice_id,
                            error=str(exc), retry_in_s=backoff.next_s)
                await backoff.wait()
            except (KsefError, LookupError) as exc:
                decision = decide(exc)
                if decision.action == "hold":
                    if await _correction_held(ctx, inv, decision):
                        continue
                    break
                rej = _correction_rejection(
                    inv, getattr(exc, "status", 500) or 500, "correction-refused",
                    f"technical correction not accepted: {exc}")
                await ctx.rejected_topic.send(key=inv.invoice_id.encode(), value=encode(rej))
                break
