"""upo stage: closed sessions on `ksef.sessions` -> per-invoice outcomes, UPO documents.

For each `closed` step it polls the session status (within the limits), pages every
invoice result, downloads the session UPO and emits one record per invoice: an outcome
(KSeF number) on `ksef.invoices.outcomes` or a rejection with KSeF's own code. Invoices
are matched by the plaintext SHA-256 KSeF reports. A 440 duplicate whose original is
this very invoice (same hash) means an earlier submission already got it in: reconciled
as accepted with the original KSeF number. The step's event is acknowledged once
`completed` is journaled; after a crash the session is simply read again (outcomes are
keyed by invoice id on a compacted topic, so a re-read replaces, not doubles).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, NamedTuple

import faust

from pipeline.clock import iso, now_utc
from pipeline.ksef.numbers import ksef_number_is_valid, sha256_b64
from pipeline.ksef.upo import UpoError, upo_entries
from pipeline.ksef_api import InvoiceResult, KsefApiError, KsefClient, KsefError, SessionStatus
from pipeline.runtime import logs
from pipeline.runtime.app import app, metrics, produce, topic
from pipeline.runtime.backoff import Backoff
from pipeline.runtime.deliveries import held_for_ack
from pipeline.runtime.invoice_ledger import already_final
from pipeline.stages.s4_upo.context import stage_context
from pipeline.stages.s4_upo.session_hashes import SessionHashes
from topics.catalog import OUTCOMES, REJECTED, SESSIONS, UPO, RecordTooLarge
from topics.codec import decode, encode
from topics.records import InvoiceOutcome, SessionStep, UpoDocument
from topics.rejections import build_rejection
from topics.session_journal import CLOSED, COMPLETED, FAILED, OPENED
from topics.upo_document import frame_upo

log = logs.get(__name__)

sessions_topic = topic(SESSIONS)

ACCEPTED = 200
DUPLICATE = 440
KSEF_REASONS = {410: "permissions", 415: "attachments-not-allowed", 430: "schema",
                435: "decryption", 440: "duplicate", 450: "semantic", 500: "unknown"}

ctx = stage_context()


def _remember(step: SessionStep) -> None:
    if step.step == OPENED and step.session_ref:
        ctx.session_batches[step.session_ref] = step.batch_id
    if step.step == CLOSED and step.session_ref:
        ctx.our_sessions[step.session_ref] = SessionHashes(
            row[1] for row in step.details.get("invoices", []))
    if step.step in (COMPLETED, FAILED):
        ctx.done_batches.add(step.batch_id)


ctx.sessions.subscribe(lambda step: _remember(step))


def _emitted(step: SessionStep, inv: _Invoice, *, ksef_number: str | None = None,
             code: int | None = None) -> bool:
    """Already on its topic for this submission: the session is being settled a second
    time (after a crash, or by the worker that took the batch over). A replayed
    correction's session is reported again on purpose: the replay gets its record."""
    if step.details.get("again"):
        return False
    return already_final(ctx.ledger.packed(inv.invoice_id), ctx.ledger.final(inv.invoice_id),
                         inv.sha256, ksef_number=ksef_number, code=code)


class _Invoice:
    __slots__ = ("invoice_id", "invoice_number", "sha256")

    def __init__(self, row: list[str]) -> None:
        self.invoice_id, self.sha256, self.invoice_number = row


async def _is_same_invoice(client: KsefClient, step: SessionStep, res: InvoiceResult,
                           sha256: str) -> bool:
    """Whether a 440's original is this very invoice. A KSeF error other than "not found"
    propagates: the session is settled again later rather than the invoice refused."""
    original = res.extensions.get("originalKsefNumber")
    if not original:
        return False
    session = res.extensions.get("originalSessionReferenceNumber")
    if session and session in ctx.our_sessions:
        return sha256 in ctx.our_sessions[session]
    if session and ctx.session_batches.get(session) == step.batch_id:
        return True  # an earlier session of this batch: the same package, the same invoices
    key = f"{original}/{sha256}"
    if key not in ctx.compared:  # not one of ours (or from before the journal): download it
        try:
            ctx.compared[key] = sha256_b64(await client.invoice_xml(original)) == sha256
        except KsefApiError as exc:
            if exc.status != 404:
                raise
            ctx.compared[key] = False
    return ctx.compared[key]


def _acquired_from_number(number: str) -> str:
    day = number.split("-")[1]
    return f"{day[:4]}-{day[4:6]}-{day[6:8]}"


async def _accept(step: SessionStep, inv: _Invoice, number: str, acquired: str, mode: str,
                  upo_ref: str | None) -> None:
    if _emitted(step, inv, ksef_number=number):
        return
    outcome = InvoiceOutcome(
        invoice_id=inv.invoice_id, seller_nip=step.seller_nip,
        invoice_number=inv.invoice_number, ksef_number=number, acquisition_date=acquired,
        invoicing_mode=mode, session_ref=step.session_ref or "", sha256=inv.sha256,
        recorded_at=iso(), upo_ref=upo_ref)
    await produce(OUTCOMES, inv.invoice_id.encode(), encode(outcome))


async def _refuse(step: SessionStep, inv: _Invoice, code: int, message: str,
                  details: dict[str, Any], reason: str | None = None) -> None:
    if _emitted(step, inv, code=code):
        return
    rej = build_rejection(invoice_id=inv.invoice_id, stage="upo", code=code,
                          reason=reason or KSEF_REASONS.get(code, f"ksef-{code}"),
                          message=message, rejected_at=iso(), details=details,
                          seller_nip=step.seller_nip, invoice_number=inv.invoice_number,
                          sha256=inv.sha256, session_ref=step.session_ref)
    await produce(REJECTED, inv.invoice_id.encode(), encode(rej))


async def _emit_result(step: SessionStep, client: KsefClient, inv: _Invoice,
                       res: InvoiceResult, upo_ref: str | None) -> bool:
    """Outcome or rejection for one per-invoice result; True when accepted."""
    if res.status_code == ACCEPTED and res.ksef_number and ksef_number_is_valid(res.ksef_number):
        acquired = (res.acquisition_date or res.invoicing_date).isoformat()
        await _accept(step, inv, res.ksef_number, acquired, res.invoicing_mode or "", upo_ref)
        return True
    if res.status_code == DUPLICATE and await _is_same_invoice(client, step, res, inv.sha256):
        original = str(res.extensions["originalKsefNumber"])
        await _accept(step, inv, original, _acquired_from_number(original),
                      res.invoicing_mode or "", upo_ref)
        return True
    details = {k: v for k, v in res.extensions.items() if v is not None}
    await _refuse(step, inv, res.status_code,
                  "; ".join([res.status_description, *res.status_details]), details)
    return False


class _Accepted(NamedTuple):
    """What settling needs of a UPO entry (a session's entries are held until it is
    settled, ~270 bytes each instead of a whole `UpoEntry`'s ~1 KB)."""

    ksef_number: str
    acquisition_date: str
    invoicing_mode: str


async def _upo_entries(step: SessionStep, client: KsefClient, status: SessionStatus
                       ) -> tuple[dict[str, _Accepted], str | None]:
    """Accepted invoices by hash from the session UPO pages (also published on ksef.upo)."""
    ref = step.session_ref or ""
    accepted: dict[str, _Accepted] = {}
    first: str | None = None
    for upo in await client.session_upos(status) if status.upo_pages else ():
        first = first or upo.reference_number
        doc = UpoDocument(session_ref=ref, seller_nip=step.seller_nip,
                          upo_ref=upo.reference_number, fetched_at=iso())
        try:
            await produce(UPO, f"{ref}/{upo.reference_number}".encode(),
                          frame_upo(doc, upo.content))
        except RecordTooLarge as exc:  # the outcomes need not wait for a copy of the UPO
            log.error("UPO page not published: larger than its topic takes",
                      session_ref=ref, upo_ref=upo.reference_number, error=str(exc))
        page: dict[str, _Accepted] = {}
        try:
            for e in upo_entries(upo.content):  # one at a time: only _Accepted is kept
                page[e.invoice_hash] = _Accepted(e.ksef_number, e.acquisition_date,
                                                 e.invoicing_mode)
            accepted.update(page)
        except UpoError as exc:
            log.warning("UPO unreadable; falling back to per-invoice results",
                        session_ref=ref, error=str(exc))
    return accepted, first


async def _settle(step: SessionStep, client: KsefClient, status: SessionStatus) -> None:
    ref = step.session_ref or ""
    invoices = {row[1]: _Invoice(row) for row in step.details.get("invoices", [])}
    metrics.count_in("upo", len(invoices))
    accepted_upo, upo_ref = await _upo_entries(step, client, status)
    accepted = 0
    for sha, entry in accepted_upo.items():
        inv = invoices.get(sha)
        if inv is not None and ksef_number_is_valid(entry.ksef_number):
            await _accept(step, inv, entry.ksef_number, entry.acquisition_date,
                          entry.invoicing_mode, upo_ref)
            accepted += 1
    rest = {sha: inv for sha, inv in invoices.items() if sha not in accepted_upo}
    if rest and (status.invoice_count or 0) > 0:
        # Usually only the failed ones: one page of /invoices/failed settles them.
        pages = (client.failed_session_invoices(ref) if status.succeeded and
                 (status.failed_count or 0) >= len(rest) else client.session_invoices(ref))
        async for res in pages:
            inv = rest.pop(res.invoice_hash, None)
            if inv is not None:
                accepted += await _emit_result(step, client, inv, res, upo_ref)
    for inv in rest.values():
        if status.succeeded:
            message = f"KSeF listed no result for this invoice in session {ref}"
        else:
            message = f"batch session {ref} ended with {status.code}: {status.description}"
        await _refuse(step, inv, status.code if not status.succeeded else 500, message,
                      {"session_details": list(status.details)},
                      reason=None if status.succeeded else f"session-{status.code}")
    done = SessionStep(batch_id=step.batch_id, seller_nip=step.seller_nip, step=COMPLETED,
                       at=iso(), session_ref=ref,
                       details={"status": status.code, "accepted": accepted,
                                "rejected": len(invoices) - accepted})
    await sessions_topic.send(key=step.batch_id.encode(), value=encode(done))
    ctx.done_batches.add(step.batch_id)
    metrics.count_out("upo", len(invoices))
    closed_at = dt.datetime.fromisoformat(step.at) if step.at else None
    if closed_at is not None and closed_at.tzinfo is not None:
        metrics.upo_wait.observe(max(0.0, (now_utc() - closed_at).total_seconds()))
    log.info("session settled", batch_id=step.batch_id, session_ref=ref, status=status.code,
             accepted=accepted, rejected=len(invoices) - accepted)


async def _follow(step: SessionStep) -> None:
    async with ctx.slots:
        backoff = Backoff(1.0, 60.0)
        while step.batch_id not in ctx.done_batches:
            try:
                client = ctx.clients.client(step.seller_nip)
                status = await client.wait_until_processed(step.session_ref or "")
                await ctx.ledger.caught_up()  # what an earlier settling of it emitted
                async with ctx.one_settling:  # see UpoContext.one_settling
                    await _settle(step, client, status)
            except KsefError as exc:
                log.warning("session result not readable yet; retrying",
                            session_ref=step.session_ref, error=str(exc),
                            retry_in_s=backoff.next_s)
                await backoff.wait()
            except Exception:
                log.exception("upo failed unexpectedly; retrying", batch_id=step.batch_id)
                await backoff.wait()
    stream = ctx.stream
    for done in ctx.followed.settled(step.batch_id):
        if stream is not None:
            await stream.ack(done)


@app.agent(sessions_topic, name="upo")
async def upo(stream: faust.StreamT[Any]) -> None:
    manual = stream.noack()
    ctx.stream = manual
    await ctx.sessions.caught_up()
    async for event in manual.events():
        try:
            step = decode(SessionStep, event.value)
        except (ValueError, TypeError):
            await manual.ack(event)
            continue
        _remember(step)
        if step.step == CLOSED and step.batch_id not in ctx.done_batches:
            await ctx.sessions.caught_up()  # settled by a worker that died before acking?
        if step.step != CLOSED or step.batch_id in ctx.done_batches:
            await manual.ack(event)
            continue
        if not ctx.followed.first(step.batch_id, held_for_ack(event)):
            continue  # a repeat: acknowledged with the first once the batch is settled
        task = asyncio.ensure_future(_follow(step))
        ctx.following.add(task)
        task.add_done_callback(ctx.following.discard)
