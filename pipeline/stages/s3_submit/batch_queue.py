"""Manifests waiting for a submit dispatcher: the most urgent first, each batch once.

Faust may deliver a manifest again around a rebalance; the repeat waits with the first
delivery and is acknowledged with it. When partitions are revoked, batches not started
here are left to the partitions' new owner (their events stay unacknowledged, so it gets
them): otherwise both workers would send the same batch, in two sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.runtime.deliveries import Deliveries
from topics.codec import decode
from topics.packed_rows import journal_rows
from topics.records import PackedBatch, PackedInvoice

NO_DEADLINE = "9999-12-31"


@dataclass(order=True)
class Waiting:
    """One queued batch; ordered by legal deadline, then packing time, then arrival."""

    deadline: str
    packed_at: str
    seq: int
    batch: PackedBatch = field(compare=False)
    event: Any = field(compare=False)


class BatchQueue:
    """Earliest-deadline-first queue of packed batches with their Faust events.

    A batch may be queued as its manifest's head (the record with its first invoice
    only) and the manifest's bytes: its invoices are decoded again when they are needed
    (the `closed` step, rejections, a rebuild), not kept as objects while the batch
    waits and its session runs. Decoded, a 3,333-invoice manifest took 4.8 MB, the largest item of a
    10,000-invoice run's heap peak (three batches at once); its bytes take 1.3 MB."""

    def __init__(self) -> None:
        self._heap: list[Waiting] = []
        self._deliveries = Deliveries()  # of batches queued or in flight
        self._seq = itertools.count()
        self._ready = asyncio.Event()
        # batch id -> (head, manifest bytes, invoices), for batches queued or in flight
        self._manifests: dict[str, tuple[PackedBatch, bytes, int]] = {}

    def __len__(self) -> int:
        return len(self._heap)

    def offer(self, batch: PackedBatch, event: Any, manifest: bytes | None = None,
              invoices: int = 0) -> bool:
        """Queue a delivered manifest; False when its batch is already queued or in flight.
        With `manifest` (the record's bytes), `batch` may be its head and `invoices`
        their number."""
        if not self._deliveries.first(batch.batch_id, event):
            return False
        if manifest is not None:
            self._manifests[batch.batch_id] = (batch, manifest, invoices)
        self.put_back(Waiting(batch.earliest_deadline or NO_DEADLINE, batch.packed_at,
                              next(self._seq), batch, event))
        return True

    async def not_empty(self) -> None:
        """Return once a batch is queued."""
        while not self._heap:
            self._ready.clear()
            await self._ready.wait()

    def pop(self, ready: Callable[[PackedBatch], bool] | None = None) -> Waiting | None:
        """The most urgent batch `ready` allows (None when none: another dispatcher took
        the last one, or every queued batch belongs to a context held for credentials)."""
        skipped: list[Waiting] = []
        found = None
        while self._heap:
            item = heapq.heappop(self._heap)
            if ready is None or ready(item.batch):
                found = item
                break
            skipped.append(item)
        for item in skipped:
            heapq.heappush(self._heap, item)
        return found

    async def changed(self, timeout: float | None) -> None:
        """Wait until a batch is queued or put back, `poke` is called, or `timeout` s."""
        self._ready.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)

    def poke(self) -> None:
        """Wake dispatchers waiting in `changed` (held contexts may be tried again)."""
        self._ready.set()

    def put_back(self, item: Waiting) -> None:
        """Queue a taken batch again (KSeF unavailable: it is retried later)."""
        heapq.heappush(self._heap, item)
        self._ready.set()

    def settled(self, batch_id: str) -> list[Any]:
        """Forget a batch that is closed or failed; every delivery of it, to acknowledge."""
        self._manifests.pop(batch_id, None)
        return self._deliveries.settled(batch_id)

    def invoices(self, batch: PackedBatch) -> list[PackedInvoice]:
        """The batch's invoices: decoded from the manifest when `batch` is the head it
        was queued as, else its own."""
        kept = self._manifests.get(batch.batch_id)
        if kept is None or kept[0] is not batch:
            return batch.invoices
        return decode(PackedBatch, kept[1]).invoices

    def journal_rows(self, batch: PackedBatch) -> list[list[str]]:
        """[invoice id, SHA-256, invoice number] of each invoice (the `closed` step's list),
        from the manifest's bytes when `batch` is the head it was queued as."""
        kept = self._manifests.get(batch.batch_id)
        if kept is None or kept[0] is not batch:
            return [[i.invoice_id, i.sha256, i.invoice_number] for i in batch.invoices]
        return journal_rows(kept[1])

    def count(self, batch: PackedBatch) -> int:
        """How many invoices the batch carries (without decoding them)."""
        kept = self._manifests.get(batch.batch_id)
        return len(batch.invoices) if kept is None or kept[0] is not batch else kept[2]

    def leave_revoked(self, revoked: Iterable[tuple[str, int]]) -> list[str]:
        """Drop the queued batches whose manifests are on revoked partitions (not those
        in flight); their ids."""
        gone = set(revoked)
        keep: list[Waiting] = []
        left: list[str] = []
        for item in self._heap:
            tp = item.event.message.tp
            if (tp.topic, tp.partition) in gone:
                left.append(item.batch.batch_id)
                self._manifests.pop(item.batch.batch_id, None)
            else:
                keep.append(item)
        if left:
            heapq.heapify(keep)
            self._heap = keep
            for batch_id in left:
                self._deliveries.settled(batch_id)  # unacknowledged: the new owner gets them
        return left
