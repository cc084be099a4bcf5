"""The submit queue: most urgent batch first, repeats wait with their batch, revoked
partitions' batches are left to their new owner."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

from pipeline.runtime.deliveries import Deliveries
from pipeline.stages.s3_submit.batch_queue import BatchQueue
from topics.records import PackedBatch


def batch(batch_id: str, deadline: str | None, packed_at: str = "2026-11-21T10:00:00") -> Any:
    return PackedBatch(batch_id=batch_id, seller_nip="5260250995", archive_format="zip",
                       package_sha256="", package_size=0, parts=[], wrapped_key_b64="",
                       iv_b64="", deflate_level=6, zlib_version="", invoices=[],
                       packed_at=packed_at, spool_dir="", offline_mode=False,
                       earliest_deadline=deadline)


def event(partition: int, offset: int, topic: str = "ksef.batches.packed") -> Any:
    return SimpleNamespace(message=SimpleNamespace(
        tp=SimpleNamespace(topic=topic, partition=partition), offset=offset))


def drain(queue: BatchQueue) -> list[str]:
    out = []
    while (item := queue.pop()) is not None:
        out.append(item.batch.batch_id)
    return out


def test_earliest_deadline_first_then_packing_time_then_arrival() -> None:
    queue = BatchQueue()
    queue.offer(batch("none", None), event(0, 1))
    queue.offer(batch("late", "2026-11-30"), event(0, 2))
    queue.offer(batch("soon-b", "2026-11-22", "2026-11-21T10:05:00"), event(0, 3))
    queue.offer(batch("soon-a", "2026-11-22", "2026-11-21T10:01:00"), event(0, 4))
    queue.offer(batch("soon-c", "2026-11-22", "2026-11-21T10:05:00"), event(0, 5))
    assert drain(queue) == ["soon-a", "soon-b", "soon-c", "late", "none"]


def test_a_repeated_manifest_waits_with_its_batch_and_is_acknowledged_with_it() -> None:
    queue = BatchQueue()
    first, again, later = event(0, 7), event(0, 7), event(0, 7)
    assert queue.offer(batch("b1", "2026-11-22"), first)
    assert not queue.offer(batch("b1", "2026-11-22"), again)  # queued
    item = queue.pop()
    assert item is not None and item.event is first and queue.pop() is None
    assert not queue.offer(batch("b1", "2026-11-22"), later)  # in flight
    assert queue.settled("b1") == [first, again, later]
    assert queue.offer(batch("b1", "2026-11-22"), event(0, 7))  # settled: a new delivery


def test_a_batch_put_back_keeps_its_place() -> None:
    queue = BatchQueue()
    queue.offer(batch("urgent", "2026-11-22"), event(0, 1))
    queue.offer(batch("later", "2026-11-25"), event(0, 2))
    item = queue.pop()
    assert item is not None
    queue.put_back(item)  # KSeF unavailable
    assert drain(queue) == ["urgent", "later"]


def test_revoked_partitions_leave_queued_batches_but_not_those_in_flight() -> None:
    queue = BatchQueue()
    queue.offer(batch("p0-a", "2026-11-22"), event(0, 1))
    queue.offer(batch("p1-a", "2026-11-23"), event(1, 1))
    queue.offer(batch("p1-b", "2026-11-24"), event(1, 2))
    queue.offer(batch("other-topic", "2026-11-24"), event(1, 3, topic="ksef.sessions"))
    in_flight = queue.pop()
    assert in_flight is not None and in_flight.batch.batch_id == "p0-a"
    left = queue.leave_revoked([("ksef.batches.packed", 0), ("ksef.batches.packed", 1)])
    assert sorted(left) == ["p1-a", "p1-b"]
    assert drain(queue) == ["other-topic"]
    assert queue.settled("p0-a") == [in_flight.event]
    # the new owner of partition 1 could be this worker again: the batch is welcome back
    assert queue.offer(batch("p1-a", "2026-11-23"), event(1, 1))


def test_a_dispatcher_waits_until_a_batch_is_queued() -> None:
    async def scenario() -> str:
        queue = BatchQueue()
        waiter = asyncio.ensure_future(queue.not_empty())
        await asyncio.sleep(0)
        assert not waiter.done()
        queue.offer(batch("b1", None), event(0, 1))
        await asyncio.wait_for(waiter, 1)
        item = queue.pop()
        assert item is not None
        return item.batch.batch_id

    assert asyncio.run(scenario()) == "b1"


def test_deliveries_start_work_once_and_hand_back_every_delivery() -> None:
    followed = Deliveries()
    first, again = event(2, 40), event(2, 40)
    assert followed.first("b1", first) and not followed.first("b1", again)
    assert followed.first("b2", event(2, 41))
    assert followed.settled("b1") == [first, again] and followed.settled("b1") == []


def test_a_held_context_is_skipped_and_keeps_its_place() -> None:
    queue = BatchQueue()
    held = batch("held", "2026-11-22")
    queue.offer(held, event(0, 1))
    other = dataclasses.replace(held, batch_id="other", seller_nip="7010002137",
                                earliest_deadline="2026-11-30")
    queue.offer(other, event(0, 2))
    not_held = lambda b: b.seller_nip != "5260250995"  # noqa: E731
    item = queue.pop(ready=not_held)
    assert item is not None and item.batch.batch_id == "other"
    assert queue.pop(ready=not_held) is None and len(queue) == 1
    assert drain(queue) == ["held"]  # still first once its context may be tried


def test_changed_wakes_on_poke_or_times_out() -> None:
    async def scenario() -> None:
        queue = BatchQueue()
        await queue.changed(0.01)  # times out quietly
        waiter = asyncio.ensure_future(queue.changed(None))
        await asyncio.sleep(0)
        assert not waiter.done()
        queue.poke()
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())


def test_a_batch_queued_as_its_head_gives_its_invoices_from_the_manifest_bytes() -> None:
    from topics.codec import encode
    from topics.records import KafkaRef, PackedInvoice

    invoices = [PackedInvoice(invoice_id=f"i-{n}", invoice_number=f"FV/{n}", sha256="h" * 44,
                              size=100 + n, entry=f"i-{n}.xml",
                              ref=KafkaRef("ksef.invoices.sealed", 0, n), mode="online")
                for n in range(3)]
    full = dataclasses.replace(batch("b1", None), invoices=invoices)
    head = dataclasses.replace(full, invoices=invoices[:1])
    queue = BatchQueue()
    assert queue.offer(head, event(0, 1), encode(full), len(invoices))
    assert queue.invoices(head) == invoices and queue.count(head) == 3
    # another object of the same batch (rebuilt from Kafka) answers for itself
    rebuilt = dataclasses.replace(full, invoices=invoices[:2])
    assert queue.invoices(rebuilt) == invoices[:2] and queue.count(rebuilt) == 2
    queue.settled("b1")  # its bytes go with it
    assert queue.invoices(head) == invoices[:1] and queue.count(head) == 1


def test_a_batch_left_to_a_new_owner_drops_its_manifest_bytes() -> None:
    from topics.codec import encode

    full = batch("b2", None)
    queue = BatchQueue()
    queue.offer(full, event(3, 1), encode(full), 5)
    assert queue.count(full) == 5
    assert queue.leave_revoked([("ksef.batches.packed", 3)]) == ["b2"]
    assert queue.count(full) == 0
