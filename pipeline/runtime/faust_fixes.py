"""Work-arounds for Faust 0.15 behaviour that loses records; applied to our one app.

Faust clears every stream buffer when it resumes the flow of records after a rebalance
or a table recovery. It resumes *after* seeking the stream partitions back to their
committed offsets, with the fetcher already running, so the records fetched between the
seek and the resume are thrown away although their offsets count as read: they are not
fetched again until the worker restarts, and a single-record gap at the head of a
partition is even committed past. Seen as invoices never sealed after a restart.

Keeping the buffers on resume is safe where Faust's stream iterator does not acknowledge
the records it skips (its compiled iterator): records of an older consumer generation
are skipped there and fetched again after the seek. Records fetched just before the
seek then arrive twice; each stage drops a repeated offset (see `ReplayGuard`) or
holds it with its first copy.

Faust also commits past a record that was delivered and is not acknowledged yet when it
sits at the head of a partition: `Consumer._new_offset` lets one missing offset between
the committed offset and the first acknowledged one pass (meant for transaction markers),
and on a partition with nothing committed it checks the head not at all. Our stages hold
records for a while (a batch waiting for its session, a `closed` step waiting for its
UPO), so a record later in the partition is often acknowledged first. A crash then loses
the held one: seen as a whole batch of invoices that never got a KSeF number.

The seek itself skips partitions with nothing committed (aiokafka seeks only to a
committed offset above 0): their held records, dropped on revoke or skipped as an older
generation, did not come back when the partition returned to the same worker. Such
partitions are now sought to their beginning, where the group would start reading.

Faust asks the broker to hold an empty fetch for 1.5 s (`fetch_max_wait_ms=1500`,
hard-coded), and aiokafka keeps one fetch in flight per broker, made of the partitions
with nothing buffered. When a worker reads its own output again (validate repartitions
through `.checked`), the fetch in flight is often one for caught-up partitions only: the
partitions whose buffers just emptied wait behind it for up to 1.5 s while both the
event loop and the consumer thread sit idle. A short wait keeps the backlog flowing.

Faust flushes the producer before it commits consumed offsets, but a flush only waits:
a record the broker never took (its batch expired) is dropped without a word, and the
offsets of the input it came from are committed all the same. `ProduceGuard` remembers
such failures of the records our stages produce and makes the next flush raise, so the
commit does not happen and the worker stops; its inputs are handled again on restart.
Except a record the broker refuses for good (too large, corrupt: the same bytes fail
after any restart, a crash loop on one record) whose producer said what to do instead
(`watch(delivery, refused)`): that is done, and flushed, before the commit.

Faust's producer waits for every in-sync replica (acks=-1) but turns idempotence on only
inside transactions: a batch retried after a broker failover (written, its answer lost)
is then stored twice. `idempotent_producer` asks for acks=all and idempotence always.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiokafka.errors import (  # type: ignore[import-untyped]
    CorruptRecordException,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from faust import streams

from pipeline.runtime import logs

# The broker refuses these records for good: the same bytes fail again after any retry or
# restart. Errors of the whole producer (authorization, a missing topic) are not here: a
# misconfiguration stops the worker instead of turning every record into a rejection.
REFUSED_FOR_GOOD = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError,
                    CorruptRecordException, InvalidTimestampError)

Refused = Callable[[BaseException], Awaitable[None]]


def skipped_records_stay_unacknowledged() -> bool:
    """True when Faust streams through its compiled iterator (the usual wheels)."""
    return getattr(streams, "_CStreamIterator", None) is not None


def keep_buffers_on_resume(app: Any) -> bool:
    """Make the app's flow control resume without clearing the stream buffers.

    Returns False (and changes nothing) where skipped records would be acknowledged.
    """
    if not skipped_records_stay_unacknowledged():
        return False
    flow = app.flow_control

    def resume() -> None:
        flow._suspend.clear()
        flow._resume.set()

    flow.resume = resume
    return True


def pending_floors(messages: Iterable[Any]) -> dict[Any, int]:
    """The lowest offset per partition among delivered, not yet acknowledged records."""
    floors: dict[Any, int] = {}
    for message in list(messages):
        if message.acked:
            continue
        low = floors.get(message.tp)
        if low is None or message.offset < low:
            floors[message.tp] = message.offset
    return floors


def never_commit_past_pending(app: Any) -> None:
    """Cap every commit at the lowest delivered record not acknowledged yet.

    Faust's own computation (acknowledged runs, gaps it detected) stays; offsets it took
    off its acknowledged list above the cap are put back, so they are committed once the
    pending record is acknowledged.
    """
    consumer = app.consumer
    faust_offset = consumer._new_offset

    def settled_offset(tp: Any, floor: int | None) -> int | None:
        committed = consumer._committed_offset[tp]
        if floor is not None and committed is not None and floor < committed:
            floor = None  # held since before a rebalance; another worker committed past it
        acked = consumer._acked[tp]
        if floor is not None and acked and min(acked) > floor:
            return None  # the head of the partition is still being worked on
        offset: int | None = faust_offset(tp)
        if floor is None or offset is None or offset <= floor:
            return offset
        rest = range(floor + 1, offset)
        acked.extend(rest)
        acked.sort()
        consumer._acked_index[tp].update(rest)
        return floor

    def committable(tps: Iterable[Any]) -> dict[Any, int]:
        floors = pending_floors(consumer._unacked_messages)
        offsets = {}
        for tp in tps:
            offset = settled_offset(tp, floors.get(tp))
            if offset is not None and consumer._should_commit(tp, offset):
                offsets[tp] = offset
        return offsets

    consumer._filter_committable_offsets = committable


IN_FLIGHT_WAIT_S = 10.0  # an event being handled when a rebalance starts may finish


class InFlight:
    """Events the acknowledge-as-they-go agents are handling right now (entered when an
    agent gets an event, left when it asks for the next one, which acknowledges it in
    the same step), so a rebalance can let them finish before it commits."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count <= 0:
            self.count = 0
            self._idle.set()

    async def idle(self, limit_s: float = IN_FLIGHT_WAIT_S) -> bool:
        """True once nothing is in flight; False after `limit_s` (a stuck handler)."""
        try:
            await asyncio.wait_for(self._idle.wait(), limit_s)
            return True
        except TimeoutError:
            return False


def commit_before_revoke(app: Any, in_flight: InFlight) -> None:
    """Commit what was handled on partitions being revoked, before they are given away.

    Faust forgets the acknowledged offsets of revoked partitions first and commits only
    later (and only with `stream_wait_empty`, which the holding stages turn off), so
    the next owner read again everything handled since the last periodic commit: every
    worker joining or leaving the group repeated seconds of work, and the validate stage
    wrote a second rejection for invoices it had already rejected. Here the streams stop
    taking events first and their buffers are dropped (as Faust's own revocation does
    next), the events the acknowledge-as-they-go agents are handling finish (`in_flight`),
    and what was acknowledged is committed (the producer flushed first, capped below any
    record still held by `never_commit_past_pending`).
    """
    consumer = app.consumer
    forget_revoked = consumer.on_partitions_revoked

    async def on_partitions_revoked(revoked: set[Any]) -> None:
        if revoked and not app.should_stop:
            try:
                consumer.stop_flow()
                app.flow_control.suspend()
                app.flow_control.clear()  # buffered, never handled: read again later
                if not await in_flight.idle():
                    logs.get(__name__).warning("an event still in flight at revocation",
                                               in_flight=in_flight.count)
                await consumer.maybe_wait_for_commit_to_finish()  # a periodic one
                await consumer.force_commit(revoked)
            except Exception as exc:  # the next owner repeats that work: at least once
                logs.get(__name__).warning("commit before revocation failed",
                                           error=str(exc), partitions=len(revoked))
        await forget_revoked(revoked)

    consumer.on_partitions_revoked = on_partitions_revoked


def seek_uncommitted_to_beginning(app: Any) -> None:
    """Make the stream seek after a rebalance rewind partitions with no committed offset."""
    consumer = app.consumer
    seek_to_committed = consumer.seek_to_committed

    async def seek() -> Any:
        committed = await seek_to_committed()
        fresh = [tp for tp, offset in committed.items()
                 if not offset and app.topics.acks_enabled_for(tp.topic)]
        if fresh:
            await consumer._thread.seek_to_beginning(*fresh)
        return committed

    consumer.seek_to_committed = seek


def short_fetch_wait(app: Any, wait_ms: int, min_bytes: int = 1) -> None:
    """Make the worker's consumer hold an empty fetch for `wait_ms` instead of 1.5 s
    (waiting for `min_bytes` at most that long)."""
    thread = app.consumer._thread
    create = thread._create_worker_consumer

    def create_with_short_wait(transport: Any) -> Any:
        consumer = create(transport)
        consumer._fetch_max_wait_ms = wait_ms  # read by AIOKafkaConsumer.start()
        consumer._fetch_min_bytes = min_bytes
        return consumer

    thread._create_worker_consumer = create_with_short_wait


def own_web_routes_only(app: Any) -> None:
    """Serve only the views our stages register (`app.page`) on the worker's web port.

    Faust mounts blueprints of its own: `/router/` (cluster topology), `/table/` (every
    table's keys *and values*), `/` and, by setting, `/stats`, `/graph`, `/performance`.
    The app turns their settings off; this drops whatever built-in blueprint is left (the
    `/` index, or one a later Faust adds), so none of them answers.
    """
    blueprints = app.web.blueprints
    blueprints._enabled = [
        (prefix, bp) for prefix, bp in blueprints._enabled
        if not (isinstance(bp, str) and bp.startswith("faust.web.apps"))
        and not getattr(bp, "__module__", "").startswith("faust.web.apps")]


def idempotent_producer(producer: Any) -> None:
    """acks=all and idempotence for every aiokafka producer Faust's `producer` creates."""
    extra = producer._settings_extra  # merged last into AIOKafkaProducer's arguments

    def with_idempotence() -> Mapping[str, Any]:
        return {**extra(), "acks": "all", "enable_idempotence": True}

    producer._settings_extra = with_idempotence


class ProduceFailed(RuntimeError):
    """The broker did not take a record; offsets past its input must not be committed."""


class ProduceGuard:
    """Turns a lost delivery into a failed flush (and so a skipped commit), or, for a
    record refused for good that has a `refused` fallback, into that fallback."""

    def __init__(self) -> None:
        self.failures: list[BaseException] = []
        self.fallbacks: dict[asyncio.Future[Any], Refused] = {}
        # refused for good: seen by the done callback first, or by a flush first
        self._settled_first: set[asyncio.Future[Any]] = set()
        self._flushed_first: set[asyncio.Future[Any]] = set()

    def watch(self, delivery: asyncio.Future[Any], refused: Refused | None = None) -> None:
        if refused is not None:
            self.fallbacks[delivery] = refused
        delivery.add_done_callback(self._settled)

    def _settled(self, delivery: asyncio.Future[Any]) -> None:
        if delivery.cancelled() or delivery.exception() is None:
            self.fallbacks.pop(delivery, None)
            return
        if isinstance(delivery.exception(), REFUSED_FOR_GOOD):
            if delivery in self._flushed_first:
                self._flushed_first.discard(delivery)  # its fallback already ran
                return
            if delivery in self.fallbacks:
                self._settled_first.add(delivery)
                return  # the next flush runs its fallback
        self.fallbacks.pop(delivery, None)
        self.failures.append(delivery.exception())  # type: ignore[arg-type]

    async def _run_fallbacks(self) -> bool:
        """Run the fallback of every delivery refused for good; True when any ran."""
        ran = False
        for delivery, refused in list(self.fallbacks.items()):
            # a flush leaves every delivery it waited for done (aiokafka resolves them
            # before its batch), though their done callbacks may not have run yet
            if not delivery.done() or delivery.cancelled():
                continue
            error = delivery.exception()
            if error is None or not isinstance(error, REFUSED_FOR_GOOD):
                continue
            del self.fallbacks[delivery]
            if delivery in self._settled_first:
                self._settled_first.discard(delivery)
            else:
                self._flushed_first.add(delivery)  # its done callback is still to come
            await refused(error)
            ran = True
        return ran

    def install(self, producer: Any) -> None:
        flush = producer.flush

        async def flush_or_fail() -> None:
            await flush()
            while await self._run_fallbacks():
                await flush()  # what the fallbacks produced is durable before the commit
            if self.failures:
                first = self.failures[0]
                raise ProduceFailed(
                    f"{len(self.failures)} record(s) the broker did not take (first: "
                    f"{type(first).__name__}: {first}); offsets are not committed, so "
                    "their inputs are handled again after a restart")

        producer.flush = flush_or_fail
