"""A thin consumer loop for a stateless hot stage: poll a batch, handle it, produce,
wait for every delivery, commit; no Faust event, ack, sensor or thread hand-over per
record.

Faust's plumbing around an agent (its event objects, acks, sensors, the consumer
thread handing records to the event loop, aiokafka encoding produce batches in Python)
cost more CPU per invoice than validating and sealing it (docs/performance.md). The
validate+seal stage keeps no state, so it needs none of that: this loop uses
librdkafka's consumer and producer (C; both release the GIL while they wait), in a
consumer group of its own (`<app id>-<stage>`).

At least once, and exactly once across a clean stop:
- a batch is committed only after every record it produced was delivered; a record the
  broker refused for good (too large for its topic) runs the fallback it was produced
  with (a rejection instead, or an alert) before that commit;
- any other failure (a delivery timed out, the broker went away) commits nothing: the
  loop builds its clients again and reads the batch again from the last commit;
- a stop finishes the batch in hand, commits it and leaves the group, so a restart
  repeats nothing; a SIGKILL repeats at most the batch in hand (harmless downstream:
  the same invoice id and bytes are a replay, not a duplicate).

Upgrade from the Faust agent that read the same topic under the app's group: when the
loop's group has no commit yet, it starts from the app group's commits on that topic
(`seed_offsets`), so invoices consumed before the upgrade are not sealed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import mode

from pipeline.runtime import logs
from pipeline.runtime.backoff import Backoff
from pipeline.runtime.clients import kafka_admin, kafka_consumer, kafka_producer
from pipeline.runtime.settings import KafkaSettings, WorkerSettings
from topics import CatalogSettings, TopicSpec, topic_name
from topics.catalog import check_record_size

log = logs.get(__name__)

Refused = Callable[[BaseException], None]
Handler = Callable[[list[Any], "LoopOutput"], None]
Partitions = list[tuple[str, int]]  # (topic name, partition)
# Run on the event loop after a poll that moved partitions, before any record of the
# poll is handled: (assigned, revoked, output). A stage with per-partition state loads
# or drops it here; what it produces is delivered before the next commit.
Rebalanced = Callable[[Partitions, Partitions, "LoopOutput"], Awaitable[None]]
# Run on the event loop after every poll, with or without records: work that must go
# out through the loop's producer in order with the records it handles.
Between = Callable[["LoopOutput"], Awaitable[None]]
RESTART_FIRST_S = 1.0
RESTART_CAP_S = 30.0
POLL_S = 0.2
# Warnings and up; `runtime.clients` sends them through Python logging, where
# `pipeline.runtime.broker_log` makes a lost broker one line, not hundreds a second.
LIBRDKAFKA_LOGS: dict[str, Any] = {"log_level": 4}
SLICE = 50  # records handled between two turns of the event loop (~25 ms)


class RefusedForGood(Exception):
    """The broker refused a record for good (it can never be written as it is)."""

    def __init__(self, error: Any) -> None:
        super().__init__(str(error))
        self.error = error


class DeliveryFailed(Exception):
    """A record was not delivered for a reason that may pass: nothing is committed."""


def _permanent(error: Any) -> bool:
    """A refusal the same record meets again on every retry (size limits)."""
    from confluent_kafka import KafkaError

    return error.code() in (KafkaError.MSG_SIZE_TOO_LARGE,
                            KafkaError.INVALID_MSG_SIZE,
                            getattr(KafkaError, "RECORD_LIST_TOO_LARGE", -10_000),
                            getattr(KafkaError, "INVALID_RECORD", -10_001))


@dataclass
class LoopOutput:
    """What a batch produces: records go to librdkafka at once; `settle` waits for them.

    `produce` raises `RecordTooLarge` before sending a record its topic's catalog size
    refuses, as the app's `produce` does, so a stage handles both the same way."""

    producer: Any
    catalog: CatalogSettings
    timeout_s: float
    produced: dict[str, int] = field(default_factory=dict)  # topic -> records, this batch
    _refusals: list[tuple[Any, Refused | None]] = field(default_factory=list)
    _failures: list[Any] = field(default_factory=list)

    def produce(self, spec: TopicSpec, key: bytes, value: bytes | None,
                refused: Refused | None = None) -> None:
        check_record_size(spec, key, value)

        def delivered(error: Any, _msg: Any) -> None:
            if error is None:
                return
            if _permanent(error):
                self._refusals.append((error, refused))
            else:
                self._failures.append(error)

        while True:
            try:
                self.producer.produce(topic_name(spec, self.catalog), value, key,
                                      on_delivery=delivered)
                break
            except BufferError:  # librdkafka's queue is full: let it send some first
                self.producer.poll(0.1)
        self.produced[spec.name] = self.produced.get(spec.name, 0) + 1

    def settle(self) -> None:
        """Every record delivered, refused records' fallbacks run (and delivered)."""
        while True:
            left = self.producer.flush(self.timeout_s)
            if left:
                raise DeliveryFailed(f"{left} record(s) not delivered in {self.timeout_s} s")
            if self._failures:
                failures, self._failures = self._failures, []
                raise DeliveryFailed(f"delivery failed: {failures[0]}")
            if not self._refusals:
                return
            refusals, self._refusals = self._refusals, []
            for error, refused in refusals:
                if refused is None:
                    raise DeliveryFailed(f"refused for good, with no fallback: {error}")
                refused(RefusedForGood(error))


def seed_offsets(admin: Any, group: str, from_group: str, topic: str | Sequence[str]) -> int:
    """Give `group` the commits `from_group` has on `topic` (one or several), if `group`
    has none at all.

    The number of partitions seeded (0: nothing to copy, or `group` existed)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    def committed(of: str) -> list[Any]:
        future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(of)])
        result = next(iter(future.values())).result(30)
        return [tp for tp in (result.topic_partitions or []) if tp.offset >= 0]

    if committed(group):
        return 0
    topics = {topic} if isinstance(topic, str) else set(topic)
    old = [TopicPartition(tp.topic, tp.partition, tp.offset) for tp in committed(from_group)
           if tp.topic in topics]
    if not old:
        return 0
    future = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, old)])
    next(iter(future.values())).result(30)
    return len(old)


class RecordLoop:
    """Consume `source` (one topic or several) in group `group`, `handle` each batch,
    commit after delivery."""

    def __init__(self, *, name: str, source: TopicSpec | Sequence[TopicSpec], group: str,
                 handle: Handler, kafka: KafkaSettings, catalog: CatalogSettings,
                 worker: WorkerSettings, seed_from_group: str | None = None,
                 batch: int = 500,
                 on_produced: Callable[[str, int], None] = lambda _topic, _n: None,
                 on_rebalance: Rebalanced | None = None,
                 between: Between | None = None) -> None:
        self.name = name
        self.sources = [source] if isinstance(source, TopicSpec) else list(source)
        self.group = group
        self.handle = handle
        self.kafka = kafka
        self.catalog = catalog
        self.worker = worker
        self.seed_from_group = seed_from_group
        self.batch = batch
        self.on_produced = on_produced
        self.on_rebalance = on_rebalance
        self.between = between
        self.stop_requested = threading.Event()
        self._consumer: Any = None
        # Partitions this loop holds, and moves not yet handed to `on_rebalance` (the
        # consumer's callbacks run on the polling thread while the event loop waits).
        self._held: set[tuple[str, int]] = set()
        self._moved: list[tuple[Partitions, Partitions]] = []

    @property
    def topic_names(self) -> list[str]:
        return [topic_name(spec, self.catalog) for spec in self.sources]

    def stop(self) -> None:
        self.stop_requested.set()

    async def run(self) -> None:
        """Until `stop`: rejoin and read again from the last commit after any failure.

        The batches are handled on the event loop, in slices of `SLICE` records between
        which other tasks run; only the waits (a poll, the deliveries, the commit) go to
        a thread, one hand-off per batch. A thread of its own for the whole loop was
        tried: its Python half and the event loop's then fought for the GIL, and the
        worker sealed 15% fewer invoices/s for 7% more CPU each (docs/performance.md)."""
        async def pause(seconds: float) -> None:  # cut short by a stop
            await asyncio.to_thread(self.stop_requested.wait, seconds)

        backoff = Backoff(RESTART_FIRST_S, RESTART_CAP_S, sleep=pause)
        seeded = self.seed_from_group is None
        while not self.stop_requested.is_set():
            try:
                if not seeded:
                    await asyncio.to_thread(self._seed)
                    seeded = True
                await self._run_once()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away, a delivery failed, a bug
                log.warning("record loop failed; reading again from the last commit",
                            loop=self.name, error=f"{type(exc).__name__}: {exc}",
                            retry_in_s=backoff.next_s)
                await backoff.wait()

    def lag(self) -> dict[tuple[str, str], float]:
        """(topic, partition) -> records not read yet, for the partitions assigned now."""
        consumer = self._consumer
        lags: dict[tuple[str, str], float] = {}
        if consumer is None:
            return lags
        try:
            for tp in consumer.position(consumer.assignment()):
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
                if high is None or high < 0 or tp.offset < 0:  # not read or fetched yet
                    continue
                lags[(tp.topic, str(tp.partition))] = float(max(0, high - tp.offset))
        except Exception:  # closing, or not fetched yet
            return {}
        return lags

    def _seed(self) -> None:
        assert self.seed_from_group is not None
        admin = kafka_admin(self.kafka)
        try:
            seeded = seed_offsets(admin, self.group, self.seed_from_group, self.topic_names)
        except Exception as exc:  # another worker joined first: its copy stands
            log.info("offsets not copied from the app's group", loop=self.name,
                     group=self.group, error=str(exc))
            return
        if seeded:
            log.info("started from the app group's commits (upgrade)", loop=self.name,
                     group=self.group, partitions=seeded)

    def _clients(self) -> tuple[Any, Any]:
        w = self.worker
        consumer = kafka_consumer(self.kafka, **{
            "group.id": self.group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(w.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(min(3.0, w.session_timeout_s / 3) * 1000),
            "fetch.wait.max.ms": int(w.fetch_max_wait_ms),
            # Bounded read-ahead: memory must not grow with a backlog. The bound counts
            # fetched (compressed) bytes; invoices inflate ~8x from lz4, so the 8 MiB of
            # before held 62 MB of decompressed invoices at a 10,000-invoice run's peak
            # (memray). 1 MiB is still two polls of 500 ahead of the loop.
            "max.partition.fetch.bytes": 256 * 1024,
            "queued.max.messages.kbytes": 1024,
            "fetch.queue.backoff.ms": 10,
            **LIBRDKAFKA_LOGS})
        producer = kafka_producer(self.kafka, **{
            "enable.idempotence": True, "acks": "all",
            # The same partitions for a key as Faust's and Java's producers (murmur2).
            "partitioner": "murmur2_random",
            # The batch is flushed once handled: records go in one request per batch.
            "linger.ms": 1000, "batch.size": 1_000_000,
            "message.max.bytes": 10 * 1024 * 1024,
            "queue.buffering.max.kbytes": 64 * 1024,
            "delivery.timeout.ms": int(w.producer_request_timeout_s * 1000),
            **LIBRDKAFKA_LOGS})
        return consumer, producer

    async def _run_once(self) -> None:
        consumer, producer = await asyncio.to_thread(self._clients)
        out = LoopOutput(producer, self.catalog, self.worker.producer_request_timeout_s)
        committed_all = False
        if self._held:  # a loop rebuilt after a failure: its partitions are gone
            self._moved.append(([], sorted(self._held)))
            self._held.clear()
        try:
            consumer.subscribe(self.topic_names, on_assign=self._assigned,
                               on_revoke=self._revoked)
            self._consumer = consumer
            while not self.stop_requested.is_set():
                await self._rebalanced(out)
                polled = await asyncio.to_thread(consumer.consume, self.batch, POLL_S)
                await self._rebalanced(out)  # before any record of the new owner's
                messages = []
                for msg in polled:
                    if msg.error() is not None:
                        log.warning("consumer error", loop=self.name, error=str(msg.error()))
                        continue
                    messages.append(msg)
                for start in range(0, len(messages), SLICE):
                    self.handle(messages[start:start + SLICE], out)
                    await asyncio.sleep(0)  # the worker's other tasks run between slices
                if self.between is not None:
                    await self.between(out)
                if not messages and not out.produced:
                    continue
                await asyncio.to_thread(out.settle)
                for topic, count in out.produced.items():
                    self.on_produced(topic, count)
                out.produced.clear()
                if messages:
                    await asyncio.to_thread(consumer.commit, asynchronous=False)
            committed_all = True
        finally:
            self._consumer = None
            # Closing leaves the group, so its partitions move on at once; after a failure
            # nothing more is committed and the batch in hand is read again.
            await asyncio.to_thread(consumer.close if committed_all else
                                    partial(_close_quietly, consumer))
            await asyncio.to_thread(producer.flush, 5)

    async def _rebalanced(self, out: LoopOutput) -> None:
        while self._moved:
            assigned, revoked = self._moved.pop(0)
            if self.on_rebalance is not None:
                await self.on_rebalance(assigned, revoked, out)

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        moved = sorted((tp.topic, tp.partition) for tp in partitions)
        self._held.update(moved)
        self._moved.append((moved, []))
        log.info("partitions assigned", loop=self.name,
                 partitions=sorted(tp.partition for tp in partitions))

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        moved = sorted((tp.topic, tp.partition) for tp in partitions)
        self._held.difference_update(moved)
        self._moved.append(([], moved))


def _close_quietly(consumer: Any) -> None:
    with contextlib.suppress(Exception):  # already broken: the group sees its session end
        consumer.close()


def loop_service(loop: RecordLoop, label: str, stop_deadline_s: float,
                 prepare: Callable[[], Awaitable[None]] | None = None) -> type[mode.Service]:
    """A service for `app.service` that runs `loop` from the worker's start (after
    `prepare`) to its stop. At a stop the batch in hand is finished, delivered and
    committed first; a loop still busy at `stop_deadline_s` is cancelled."""

    class RecordLoopService(mode.Service):
        running: asyncio.Task[None] | None = None

        def _repr_name(self) -> str:  # its name in the worker's log
            return label

        async def on_started(self) -> None:
            self.running = asyncio.ensure_future(self._run())

        async def _run(self) -> None:
            if prepare is not None:
                await prepare()
            await loop.run()

        async def on_stop(self) -> None:
            loop.stop()
            if self.running is None:
                return
            done, _ = await asyncio.wait([self.running], timeout=stop_deadline_s)
            if not done:
                log.warning("record loop still busy at the stop deadline", loop=loop.name)
                self.running.cancel()

    return RecordLoopService
