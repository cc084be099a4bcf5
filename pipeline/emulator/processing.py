"""Asynchronous session processing, as KSeF does it after a send or a close.

Batch: 150 -> decrypt and join the parts on disk -> count (420) -> read the archive in
chunks, check each chunk in the validation pool while the next one is read, decide and
commit results in archive order -> UPO -> 200, or 445 when nothing was accepted; a
package-level failure ends the session with 405/415/430/435/500.
Online: each sent invoice is checked in the background; once a closed session (170) has
no invoice left in progress it gets its UPO (200), 445, or 440 when nothing was sent.

Every step is committed to SQLite, so after a restart `start()` resumes where it stopped
(a batch continues after the last committed invoice).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Iterator
from itertools import islice
from typing import Any

from pipeline.emulator import statuses, upo_render
from pipeline.emulator.archive import (
    Entry,
    PackageError,
    PartFile,
    assemble,
    count_invoices,
    iter_invoices,
)
from pipeline.emulator.checks import CheckItem, Verdict
from pipeline.emulator.faults import SESSION_SCOPE
from pipeline.emulator.outcomes import Candidate, decide
from pipeline.emulator.refs import BATCH_CHANNEL, INVOICE, ONLINE_CHANNEL, UPO, reference_number
from pipeline.emulator.state import Emulator
from pipeline.emulator.store import Row
from pipeline.emulator.timefmt import iso, parse, polish_day, utcnow
from pipeline.ksef.numbers import sha256_b64

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0


CHUNK_BYTES = 32 * 1024 * 1024  # bounds memory when invoices are large (up to 3 MB each)


def _take(iterator: Iterator[Entry], count: int, budget: int = CHUNK_BYTES) -> list[Entry]:
    """Up to `count` entries, stopping early once they hold `budget` bytes."""
    taken: list[Entry] = []
    held = 0
    for entry in islice(iterator, count):
        taken.append(entry)
        held += len(entry.data or b"")
        if held >= budget:
            break
    return taken


class Processor:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self._commit_lock = threading.Lock()
        self._finalize_lock = asyncio.Lock()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running_batches: set[str] = set()

    # lifecycle
    async def start(self) -> None:
        store = self.emu.store
        for session in store.sessions_with_status([statuses.PROCESSING]):
            self.schedule_batch(session["reference"])
        for invoice in store.pending_invoices():
            self._queue.put_nowait(invoice["reference"])
        self._spawn(self._online_loop())
        self._spawn(self._sweep_loop())
        for session in store.sessions_with_status([statuses.CLOSED]):
            self._spawn(self.finalize_online(session["reference"]))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _set_status(self, session: Row, code: int, details: list[str] | None = None,
                    **extra: Any) -> None:
        self.emu.store.update_session(
            session["reference"], status_code=code,
            status_description=statuses.describe(session["kind"], code),
            status_details=json.dumps(details) if details else None,
            updated=iso(utcnow()), **extra)

    # batch sessions
    def schedule_batch(self, reference: str) -> None:
        if reference not in self._running_batches:
            self._running_batches.add(reference)
            self._spawn(self._run_batch(reference))

    async def _run_batch(self, reference: str) -> None:
        session = self.emu.store.session(reference)
        assert session is not None
        try:
            forced = self.emu.faults.take(SESSION_SCOPE)
            if forced is not None:
                raise PackageError(forced, "failure forced by the emulator operator")
            package, compression = await self._prepare_package(session)
            total = await asyncio.to_thread(count_invoices, package, compression)
            if total > self.emu.config.max_invoices:
                raise PackageError(statuses.TOO_MANY_INVOICES,
                                   f"the package holds {total} invoices; a session allows "
                                   f"at most {self.emu.config.max_invoices}")
            if total == 0:
                self._set_status(session, statuses.CANCELLED, ["Brak faktur w paczce"])
                return
            self.emu.store.update_session(reference, invoice_count=total)
            await self._check_package(session, package, compression)
            await self._finish(session)
            self.emu.drop_session_files(reference)
        except PackageError as failure:
            self._set_status(session, failure.code, [failure.detail])
            self.emu.drop_session_files(reference)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("batch session %s failed unexpectedly", reference)
            self._set_status(session, statuses.UNKNOWN, [f"{type(exc).__name__}: {exc}"])
        finally:
            self._running_batches.discard(reference)

    async def _prepare_package(self, session: Row) -> tuple[Any, str]:
        reference = session["reference"]
        try:
            key = self.emu.session_key(session)
        except ValueError as exc:
            raise PackageError(statuses.KEY_FAILED, str(exc)) from exc
        batch = json.loads(session["batch_file"])
        directory = self.emu.session_dir(reference)
        package = directory / "package.bin"
        ready = directory / "package.ok"
        if not ready.exists():
            parts = [PartFile(p["ordinal"], directory / f"part-{p['ordinal']}.aes",
                              p["declared_hash"], p["declared_size"], p["uploaded_hash"],
                              p["uploaded_size"]) for p in self.emu.store.parts(reference)]
            partial = directory / "package.partial"
            await asyncio.to_thread(assemble, parts, key, partial, batch["fileHash"],
                                    batch["fileSize"])
            partial.replace(package)
            ready.touch()
        return package, batch.get("compressionType") or "Zip"

    async def _check_package(self, session: Row, package: Any, compression: str) -> None:
        emu = self.emu
        reference = session["reference"]
        done = emu.store.processed_ordinals(reference)
        entries = iter_invoices(package, compression, skip=done)
        subject = emu.store.subject(session["nip"])
        attachments = bool(subject and subject["attachments"])
        today = polish_day(parse(session["created"]))
        depth = max(1, emu.pool.workers) + 1
        inflight: deque[tuple[list[Candidate], asyncio.Future[list[Verdict]] | None]] = deque()
        ordinal = done
        while True:
            chunk = await asyncio.to_thread(_take, entries, emu.config.chunk_invoices)
            if not chunk:
                break
            candidates: list[Candidate] = []
            items: list[CheckItem] = []
            now = utcnow()
            for entry in chunk:
                ordinal += 1
                base = {"reference": reference_number(INVOICE, now), "session": reference,
                        "ordinal": ordinal, "file_name": entry.name[-128:],
                        "invoicing_date": session["created"],
                        "offline_declared": session["offline_mode"],
                        "invoice_hash": entry.sha256_b64 or "", "size": entry.size}
                if entry.data is None:
                    candidates.append(Candidate(base, None, None, (
                        430, f"the file has {entry.size} bytes, more than any invoice may")))
                    continue
                candidates.append(Candidate(base, None, entry.data))
                items.append(CheckItem(entry.data, today, session["nip"], attachments))
            future = asyncio.ensure_future(emu.pool.check(items)) if items else None
            inflight.append((candidates, future))
            if len(inflight) >= depth:
                await self._commit_chunk(*inflight.popleft(), channel=BATCH_CHANNEL)
        while inflight:
            await self._commit_chunk(*inflight.popleft(), channel=BATCH_CHANNEL)

    async def _commit_chunk(self, candidates: list[Candidate],
                            future: asyncio.Future[list[Verdict]] | None, *, channel: int,
                            insert: bool = True) -> None:
        verdicts = iter(await future) if future is not None else iter(())
        for cand in candidates:
            if cand.forced is None:
                cand.verdict = next(verdicts)
        await asyncio.to_thread(self._decide_and_commit, candidates, channel, insert)

    def _decide_and_commit(self, candidates: list[Candidate], channel: int,
                           insert: bool) -> None:
        with self._commit_lock:
            outcomes = decide(candidates, store=self.emu.store, faults=self.emu.faults,
                              channel=channel, now=utcnow())
            if insert:  # batch: accepted documents go to the session's file, not SQLite
                kept = [o for o in outcomes if o.blob is not None]
                if kept:
                    offsets = self.emu.blobs.append(kept[0].row["session"],
                                                    [o.blob for o in kept if o.blob])
                    for out, offset in zip(kept, offsets, strict=True):
                        out.row.update(blob_offset=offset, blob_size=len(out.blob or b""))
                        out.blob = None
            self.emu.store.commit_outcomes(outcomes, insert=insert)

    async def _finish(self, session: Row) -> None:
        _, accepted, _ = self.emu.store.invoice_counts(session["reference"])
        if accepted == 0:
            self._set_status(session, statuses.NONE_ACCEPTED)
            return
        await asyncio.to_thread(self._write_upo, session)
        self._set_status(session, statuses.SUCCEEDED)

    def _write_upo(self, session: Row) -> None:
        reference = session["reference"]
        invoices = self.emu.store.accepted_invoices(reference)
        directory = self.emu.upo_dir(reference)
        rows = []
        for chunk, page in upo_render.pages(invoices, self.emu.config.upo_page_size):
            body = upo_render.render(session, chunk, page)
            upo_ref = reference_number(UPO, utcnow())
            path = directory / f"{upo_ref}.xml"
            path.write_bytes(body)
            rows.append({"reference": upo_ref, "session": reference, "page": page[0],
                         "path": str(path), "sha256": sha256_b64(body)})
        self.emu.store.replace_upo_pages(reference, rows)

    # online sessions
    def enqueue_online(self, invoice_reference: str) -> None:
        self._queue.put_nowait(invoice_reference)

    async def _online_loop(self) -> None:
        while True:
            refs = [await self._queue.get()]
            while not self._queue.empty() and len(refs) < self.emu.config.chunk_invoices:
                refs.append(self._queue.get_nowait())
            try:
                sessions = await self._process_online(refs)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("online invoice processing failed; will retry")
                await asyncio.sleep(1.0)
                for ref in refs:
                    self._queue.put_nowait(ref)
                continue
            for reference in sessions:
                await self.finalize_online(reference)

    async def _process_online(self, refs: list[str]) -> set[str]:
        store = self.emu.store
        candidates: list[Candidate] = []
        items: list[CheckItem] = []
        touched: set[str] = set()
        for ref in refs:
            row = store.invoice(ref)
            if row is None or row["status_code"] >= 200:
                continue
            session = store.session(row["session"])
            assert session is not None
            touched.add(session["reference"])
            payload = store.pending_payload(ref)
            base = {"reference": ref, "session": row["session"], "ordinal": row["ordinal"],
                    "invoicing_date": row["invoicing_date"],
                    "offline_declared": row["offline_declared"],
                    "invoice_hash": row["invoice_hash"], "size": row["size"]}
            if payload is None:
                candidates.append(Candidate(base, None, None, (500, "invoice content lost")))
                continue
            subject = store.subject(session["nip"])
            attachments = bool(row["corrected_hash"] and subject and subject["attachments"])
            day = polish_day(parse(row["invoicing_date"]))
            candidates.append(Candidate(base, None, payload))
            items.append(CheckItem(payload, day, session["nip"], attachments))
        if candidates:
            future = asyncio.ensure_future(self.emu.pool.check(items)) if items else None
            await self._commit_chunk(candidates, future, channel=ONLINE_CHANNEL, insert=False)
        return touched

    async def finalize_online(self, reference: str) -> None:
        """Give a closed online session its final status once nothing is in progress."""
        async with self._finalize_lock:
            session = self.emu.store.session(reference)
            if session is None or session["status_code"] != statuses.CLOSED:
                return
            total, accepted, failed = self.emu.store.invoice_counts(reference)
            if total > accepted + failed:
                return
            if total == 0:
                self._set_status(session, statuses.CANCELLED, ["Nie przesłano faktur"])
            else:
                await self._finish(session)

    def close_online(self, session: Row) -> None:
        self._set_status(session, statuses.CLOSED, closed=iso(utcnow()))
        self._spawn(self.finalize_online(session["reference"]))

    def close_batch(self, session: Row) -> None:
        self._set_status(session, statuses.PROCESSING, closed=iso(utcnow()))
        self.schedule_batch(session["reference"])

    # timeouts
    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.sweep()

    def sweep(self) -> None:
        """Close online sessions past validUntil; cancel batch sessions never closed."""
        now = utcnow()
        for session in self.emu.store.sessions_with_status([statuses.OPEN]):
            if session["valid_until"] is None or parse(session["valid_until"]) > now:
                continue
            if session["kind"] == statuses.ONLINE:
                self.close_online(session)
            else:
                self._set_status(session, statuses.CANCELLED, ["Przekroczono czas wysyłki"])
                self.emu.drop_session_files(session["reference"])
