"""The Faust application: one app, every stage registers its agents on it.

Values are raw bytes on the wire; stages decode with `topics.codec` so the records stay
plain dataclasses that non-Faust code (ingest, tests, emulator tooling) shares.
Several workers with the same app id form one consumer group; each needs its own
data dir and web port.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust

from pipeline.ksef_api.health import HealthObserver
from pipeline.ksef_api.link import KsefClients, KsefSettings, WorkerLimiters
from pipeline.metrics import Metrics
from pipeline.metrics.ksef import request_observer
from pipeline.runtime import logs
from pipeline.runtime.faust_fixes import (
    InFlight,
    ProduceGuard,
    Refused,
    commit_before_revoke,
    idempotent_producer,
    keep_buffers_on_resume,
    never_commit_past_pending,
    own_web_routes_only,
    seek_uncommitted_to_beginning,
    short_fetch_wait,
)
from pipeline.runtime.memory_return import return_freed_memory
from pipeline.runtime.pacing import Pacer
from pipeline.runtime.recovery_watch import watch_recovery
from pipeline.runtime.settings import KafkaSettings, WorkerSettings
from topics import CatalogSettings, TopicSpec, topic_name
from topics.catalog import check_record_size

kafka_settings = KafkaSettings.from_env()
worker_settings = WorkerSettings.from_env()
catalog_settings = CatalogSettings.from_env()

app = faust.App(
    worker_settings.app_id,
    broker=kafka_settings.faust_url(),
    broker_credentials=kafka_settings.faust_credentials(),
    key_serializer="raw",
    value_serializer="raw",
    datadir=worker_settings.data_dir,
    web_host=worker_settings.web_host,
    web_port=worker_settings.web_port,
    web_bind=worker_settings.web_host,
    # Faust's own pages are off (`own_web_routes_only` below): /table/<name>/<key>/ served
    # stored values (invoice ids and hashes of the dedupe table), /router/ the topology.
    web_router_enabled=False,
    web_tables_enabled=False,
    web_stats_enabled=False,
    web_graph_enabled=False,
    web_metrics_enabled=False,
    store="memory://",
    topic_partitions=catalog_settings.partitions,
    # `ksef-pipeline worker` resolves `auto` replication from the cluster's size first
    topic_replication_factor=catalog_settings.replication_factor or 1,
    table_standby_replicas=0,
    # Stages holding events until a batch is sealed or a session settled must not block
    # a rebalance or shutdown waiting for them: unacked events are simply redelivered.
    stream_wait_empty=worker_settings.stream_wait_empty,
    producer_acks=-1,  # all in-sync replicas; idempotence: see idempotent_producer below
    producer_max_request_size=10 * 1024 * 1024,
    # Faust's default batch (16 KB) is smaller than one validated invoice record: every
    # record would go alone. Bigger batches + 5 ms linger save ~25% CPU per invoice.
    producer_max_batch_size=1_000_000,
    producer_linger_ms=5,
    producer_request_timeout=worker_settings.producer_request_timeout_s,
    broker_max_poll_records=500,
    # Bounded read-ahead: Faust buffers up to 4,096 events per partition and fetches 1 MB
    # per partition, so a worker meeting a backlog of invoices held ~120 MB of them;
    # memory should not grow with the backlog (see ops/bench e2e --rss-compare).
    stream_buffer_maxsize=256,
    consumer_max_fetch_size=256 * 1024,
    broker_session_timeout=worker_settings.session_timeout_s,
    broker_heartbeat_interval=min(3.0, worker_settings.session_timeout_s / 3),
    logging_config=logs.logging_config(worker_settings.log_level,
                                       worker_settings.broker_log_reminder_s),
    autodiscover=False,
)
if not keep_buffers_on_resume(app):
    logs.get(__name__).warning(
        "faust runs without its compiled stream iterator: records fetched during a "
        "rebalance may wait for the next restart")
own_web_routes_only(app)
never_commit_past_pending(app)
in_flight = InFlight()  # see ReplayGuard: the agents that acknowledge as they go
commit_before_revoke(app, in_flight)
seek_uncommitted_to_beginning(app)
short_fetch_wait(app, worker_settings.fetch_max_wait_ms, worker_settings.fetch_min_bytes)
idempotent_producer(app.producer)
produce_guard = ProduceGuard()
produce_guard.install(app.producer)
produce_pacer = Pacer(200)  # see pipeline/runtime/pacing.py
watch_recovery(app, worker_settings.recovery_stall_s)
return_freed_memory(app, worker_settings.memory_return_s)
# The worker's Prometheus families (`/metrics`, registered by `ksef-pipeline worker`).
metrics = Metrics()
# KSeF counts requests per context and IP: every stage's clients share one limiter.
ksef_limiters = WorkerLimiters()


# HTTP clients to close once the stages have stopped, before the event loop closes: left
# open, each logged "Unclosed client session" and "Unclosed connector" at every stop.
at_stop: list[Callable[[], Awaitable[None]]] = []


def close_at_stop(closer: Callable[[], Awaitable[None]]) -> None:
    """Run `closer` when the worker stops, after its stages (`run_at_stop`)."""
    at_stop.append(closer)


async def run_at_stop() -> None:
    """Run the closers registered with `close_at_stop`, the latest first."""
    while at_stop:
        closer = at_stop.pop()
        try:
            await closer()
        except Exception:  # the worker stops anyway; the next closer still runs
            logs.get(__name__).exception("closing a client at stop failed")


def stage_ksef_clients(then: HealthObserver | None = None) -> KsefClients:
    """A stage's KSeF clients: the environment's settings, requests counted in the
    worker's metrics (and passed on to `then`), on the worker's one request limiter.
    The worker closes them once its stages have stopped."""
    settings = KsefSettings.from_env()
    clients = KsefClients(settings, observer=request_observer(metrics, then),
                          limiter=ksef_limiters.get(settings))
    close_at_stop(clients.aclose)
    return clients


def topic(spec: TopicSpec, **options: Any) -> faust.TopicT:
    """The Faust handle of a catalog topic (created by `ksef-pipeline topics create`)."""
    return app.topic(
        topic_name(spec, catalog_settings),
        key_type=bytes,
        value_type=bytes,
        partitions=spec.partition_count(catalog_settings),
        **options,
    )


async def produce(spec: TopicSpec, key: bytes, value: bytes | None,
                  refused: Refused | None = None) -> None:
    """Hand one record to the app's producer directly.

    An order of magnitude cheaper per record than `Topic.send` (no Faust message
    envelope, callbacks or sensors), with the same partitioner and ordering. Faust still
    flushes this producer before it commits consumed offsets, so a record produced while
    handling an event is durable before that event counts as done; a record the broker
    never takes makes that flush fail instead (`ProduceGuard`). A record larger than its
    topic takes raises `RecordTooLarge` here, before anything is sent: the caller turns it
    into a rejection instead of a flush that fails on every restart. `refused` is what to
    do when the broker still refuses the record for good (run before the next commit).
    """
    check_record_size(spec, key, value)
    delivery = await app.producer.send(topic_name(spec, catalog_settings), key, value,
                                       None, None, None)
    produce_guard.watch(delivery, refused)  # type: ignore[arg-type]
    metrics.produced(spec.name)
    await produce_pacer.tick()
