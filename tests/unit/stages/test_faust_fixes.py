"""Faust keeps records fetched around a rebalance, never commits past a held record, and
does not let an empty fetch stall the worker."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import Message
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from pipeline.runtime.faust_fixes import (
    ProduceFailed,
    ProduceGuard,
    idempotent_producer,
    keep_buffers_on_resume,
    never_commit_past_pending,
    pending_floors,
    seek_uncommitted_to_beginning,
    short_fetch_wait,
    skipped_records_stay_unacknowledged,
)


def test_compiled_stream_iterator_is_in_use() -> None:
    # The fix is only applied where skipped records stay unacknowledged.
    assert skipped_records_stay_unacknowledged()


def test_resume_keeps_buffered_records_and_restores_flow() -> None:
    async def scenario() -> tuple[bool, int, bool]:
        flow = FlowControlEvent(initially_suspended=True)
        buffer: FlowControlQueue[str] = FlowControlQueue(flow_control=flow,
                                                         clear_on_resume=True)
        assert keep_buffers_on_resume(SimpleNamespace(flow_control=flow))
        flow.resume()
        await buffer.put("offset-12")
        flow.suspend()
        flow.resume()  # Faust's recovery resumes after its seek: the record must stay
        return flow.is_active(), buffer.qsize(), flow._resume.is_set()

    active, size, resumed = asyncio.run(scenario())
    assert (active, size, resumed) == (True, 1, True)


def test_unpatched_resume_clears_the_buffer() -> None:
    # Documents the Faust behaviour the fix removes: without it the record is gone.
    async def scenario() -> int:
        flow = FlowControlEvent(initially_suspended=False)
        buffer: FlowControlQueue[str] = FlowControlQueue(flow_control=flow,
                                                         clear_on_resume=True)
        await buffer.put("offset-12")
        flow.resume()
        return buffer.qsize()

    assert asyncio.run(scenario()) == 0


def test_explicit_clear_still_empties_buffers_on_revoke() -> None:
    async def scenario() -> int:
        flow = FlowControlEvent(initially_suspended=False)
        buffer: FlowControlQueue[str] = FlowControlQueue(flow_control=flow,
                                                         clear_on_resume=True)
        keep_buffers_on_resume(SimpleNamespace(flow_control=flow))
        await buffer.put("offset-12")
        flow.suspend()
        flow.clear()  # what Faust does when partitions are revoked or the worker stops
        return buffer.qsize()

    assert asyncio.run(scenario()) == 0


# --- commits never pass a record that is still being worked on ---------------------------

def _consumer_with(patched: bool) -> Any:
    app = faust.App(f"commit-test-{uuid.uuid4().hex[:6]}", broker="kafka://127.0.0.1:9")
    if patched:
        never_commit_past_pending(app)
    return app.consumer


def _delivered(consumer: Any, tp: TP, offset: int) -> Message:
    message = Message(tp.topic, tp.partition, offset, 0.0, 0, [], b"k", b"v", None, tp=tp)
    consumer.track_message(message)
    return message


def _ack(consumer: Any, message: Message) -> None:
    # what Consumer.ack does for a topic with acks enabled
    message.acked = True
    consumer._acked[message.tp].append(message.offset)
    consumer._acked_index[message.tp].add(message.offset)


def _commit(consumer: Any, tp: TP) -> int | None:
    offset = consumer._filter_committable_offsets([tp]).get(tp)
    if offset is not None:
        consumer._committed_offset[tp] = offset
    return offset


TP0 = TP("ksef.sessions", 0)


@pytest.mark.parametrize("committed", [None, 10])
def test_unpatched_faust_commits_past_a_held_head_record(committed: int | None) -> None:
    # Documents the Faust behaviour the fix removes: the held `closed` step is skipped.
    consumer = _consumer_with(patched=False)
    consumer._committed_offset[TP0] = committed
    head = 10 if committed else 0
    _delivered(consumer, TP0, head)
    _ack(consumer, _delivered(consumer, TP0, head + 1))
    assert _commit(consumer, TP0) == head + 2


@pytest.mark.parametrize("committed", [None, 10])
def test_a_held_head_record_stops_the_commit_until_it_is_acknowledged(
        committed: int | None) -> None:
    consumer = _consumer_with(patched=True)
    consumer._committed_offset[TP0] = committed
    head = 10 if committed else 0
    held = _delivered(consumer, TP0, head)
    for offset in (head + 1, head + 2):
        _ack(consumer, _delivered(consumer, TP0, offset))
    assert _commit(consumer, TP0) is None
    _ack(consumer, held)
    assert _commit(consumer, TP0) == head + 3


def test_a_held_record_inside_a_detected_gap_caps_the_commit_and_nothing_stalls() -> None:
    # Faust's gap ranges include the record after the gap: it would count as done.
    consumer = _consumer_with(patched=True)
    consumer._committed_offset[TP0] = 10
    _ack(consumer, _delivered(consumer, TP0, 10))
    held = _delivered(consumer, TP0, 13)
    asyncio.run(consumer._add_gap(TP0, 11, 13))
    _ack(consumer, _delivered(consumer, TP0, 14))
    assert _commit(consumer, TP0) == 13
    _ack(consumer, held)
    _ack(consumer, _delivered(consumer, TP0, 15))
    assert _commit(consumer, TP0) == 16


def test_without_held_records_faust_commits_as_before() -> None:
    consumer = _consumer_with(patched=True)
    consumer._committed_offset[TP0] = 10
    for offset in (11, 12):  # offset 10 is a transaction marker: never delivered
        _ack(consumer, _delivered(consumer, TP0, offset))
    assert _commit(consumer, TP0) == 13


def test_pending_floors_ignore_acknowledged_records() -> None:
    consumer = _consumer_with(patched=True)
    tp1 = TP("ksef.sessions", 1)
    done = _delivered(consumer, TP0, 3)
    _ack(consumer, done)
    kept = [done, _delivered(consumer, TP0, 7), _delivered(consumer, TP0, 5),
            _delivered(consumer, tp1, 9)]
    assert pending_floors(kept) == {TP0: 5, tp1: 9}


# --- the seek after a rebalance rewinds partitions with nothing committed -----------------

class _FakeThread:
    def __init__(self, committed: dict[TP, int | None]) -> None:
        self.committed = committed
        self.rewound: list[TP] = []

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return self.committed

    async def seek_to_beginning(self, *partitions: TP) -> None:
        self.rewound.extend(partitions)


def test_partitions_without_a_committed_offset_are_sought_to_their_beginning() -> None:
    held, empty, resumed = TP("ksef.batches.packed", 0), TP("ksef.batches.packed", 1), \
        TP("ksef.batches.packed", 2)
    changelog = TP("ksef-pipeline-ksef-dedupe-changelog", 0)  # Faust restores tables itself
    thread = _FakeThread({held: None, empty: 0, resumed: 7, changelog: None})
    consumer = SimpleNamespace(_thread=thread, seek_to_committed=thread.seek_to_committed)
    topics = SimpleNamespace(acks_enabled_for=lambda name: name == "ksef.batches.packed")
    seek_uncommitted_to_beginning(SimpleNamespace(consumer=consumer, topics=topics))

    committed = asyncio.run(consumer.seek_to_committed())

    assert committed == thread.committed  # Faust still learns the committed offsets
    assert sorted(thread.rewound) == [held, empty]


def test_a_record_held_from_before_a_rebalance_does_not_block_a_partition_committed_past_it(
        ) -> None:
    consumer = _consumer_with(patched=True)
    _delivered(consumer, TP0, 5)  # still in flight here; the partition came back committed
    consumer._committed_offset[TP0] = 10
    for offset in (10, 11):
        _ack(consumer, _delivered(consumer, TP0, offset))
    assert _commit(consumer, TP0) == 12


async def test_short_fetch_wait_reaches_the_fetcher_of_the_workers_consumer() -> None:
    import inspect

    from aiokafka import AIOKafkaConsumer
    from faust.transport.drivers import aiokafka as faust_aiokafka

    # Faust hard-codes the 1.5 s this replaces; aiokafka hands the attribute to its Fetcher.
    assert "fetch_max_wait_ms=1500" in inspect.getsource(
        faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
        AIOKafkaConsumer.start)
    made = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", fetch_max_wait_ms=1500)
    seen: list[Any] = []

    def create(transport: Any) -> Any:
        seen.append(transport)
        return made

    thread = SimpleNamespace(_create_worker_consumer=create)
    short_fetch_wait(SimpleNamespace(consumer=SimpleNamespace(_thread=thread)), 100)
    transport = object()
    assert thread._create_worker_consumer(transport) is made
    assert seen == [transport] and made._fetch_max_wait_ms == 100


class _FakeProducer:
    def __init__(self) -> None:
        self.flushed = 0

    async def flush(self) -> None:
        self.flushed += 1


async def test_a_record_the_broker_did_not_take_fails_the_flush_before_any_commit() -> None:
    producer, guard = _FakeProducer(), ProduceGuard()
    guard.install(producer)
    loop = asyncio.get_running_loop()
    delivered, cancelled, lost = loop.create_future(), loop.create_future(), loop.create_future()
    for delivery in (delivered, cancelled, lost):
        guard.watch(delivery)
    delivered.set_result("metadata")
    cancelled.cancel()  # a stop, not a lost record
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    await producer.flush()
    assert producer.flushed == 1

    lost.set_exception(TimeoutError("batch expired"))
    await asyncio.sleep(0)
    with pytest.raises(ProduceFailed, match=r"1 record\(s\) the broker did not take .*"
                                           r"TimeoutError: batch expired"):
        await producer.flush()
    assert producer.flushed == 2  # the real flush still ran first


async def test_a_record_refused_for_good_runs_its_fallback_and_flushes_it_first() -> None:
    """A record the broker will never take (too large) would fail every flush after every
    restart: with a fallback it is replaced (a rejection), flushed before the commit."""
    from aiokafka.errors import (  # type: ignore[import-untyped]
        KafkaTimeoutError,
        MessageSizeTooLargeError,
    )

    producer, guard = _FakeProducer(), ProduceGuard()
    guard.install(producer)
    loop = asyncio.get_running_loop()
    ran: list[tuple[str, int]] = []

    def fallback(name: str) -> Any:
        async def refused(error: BaseException) -> None:
            ran.append((type(error).__name__, producer.flushed))
        return refused

    too_large, fine = loop.create_future(), loop.create_future()
    guard.watch(too_large, fallback("too-large"))
    guard.watch(fine, fallback("fine"))
    too_large.set_exception(MessageSizeTooLargeError())
    fine.set_result("metadata")
    await producer.flush()  # no ProduceFailed: the fallback stands in for the record
    assert ran == [("MessageSizeTooLargeError", 1)]
    assert producer.flushed == 2  # what the fallback produced was flushed too
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert guard.fallbacks == {} and guard.failures == []
    assert not guard._settled_first and not guard._flushed_first

    settled_first = loop.create_future()  # its done callback before the flush this time
    guard.watch(settled_first, fallback("settled-first"))
    settled_first.set_exception(MessageSizeTooLargeError())
    await asyncio.sleep(0)
    await producer.flush()
    assert len(ran) == 2 and guard.failures == [] and not guard.fallbacks
    assert not guard._settled_first and not guard._flushed_first
    await producer.flush()
    assert len(ran) == 2  # once each

    expired = loop.create_future()  # retriable: no fallback, the worker stops as before
    guard.watch(expired, fallback("expired"))
    expired.set_exception(KafkaTimeoutError())
    await asyncio.sleep(0)
    with pytest.raises(ProduceFailed):
        await producer.flush()
    assert len(ran) == 2

    guard.failures.clear()
    bare = loop.create_future()  # refused for good but nothing to do instead: stop
    guard.watch(bare)
    bare.set_exception(MessageSizeTooLargeError())
    await asyncio.sleep(0)
    with pytest.raises(ProduceFailed):
        await producer.flush()


async def test_the_workers_producer_is_idempotent_and_waits_for_all_replicas() -> None:
    from aiokafka.producer.transaction_manager import TransactionManager

    app = faust.App(f"idem-test-{uuid.uuid4().hex[:6]}", broker="kafka://127.0.0.1:9",
                    producer_acks=1)
    idempotent_producer(app.producer)
    made = app.producer._new_producer()  # what Faust starts (not connected yet)
    try:
        # aiokafka keeps producer id and sequence numbers only when idempotent
        assert isinstance(made._txn_manager, TransactionManager)
        assert made._sender._acks == -1  # acks=all even where Faust was told 1
    finally:
        await made.stop()
