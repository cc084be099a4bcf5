"""Create the topic catalog on a cluster and report drift between catalog and cluster.

Idempotent: existing topics are left alone unless `fix=True`, which raises partition
counts and aligns configs (Kafka cannot shrink partitions or change replication here;
those are reported, not touched). Replication follows the cluster's size unless set.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from topics import CATALOG, CatalogSettings, TopicSpec, topic_name

TIMEOUT_S = 30.0


@dataclass
class TopicReport:
    name: str
    status: str  # ok | created | missing | drift | fixed
    partitions: int | None = None
    replication: int | None = None
    configs: dict[str, str] = field(default_factory=dict)
    drift: list[str] = field(default_factory=list)


def _describe_configs(admin: AdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """Configs by topic. On a cluster of several brokers a topic just created may be
    unknown to the broker asked for a while (metadata propagates): asked again then."""
    out: dict[str, dict[str, str]] = {}
    pending = list(names)
    deadline = time.monotonic() + TIMEOUT_S
    while pending:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in pending]
        pending = []
        for res, fut in admin.describe_configs(resources, request_timeout=TIMEOUT_S).items():
            try:
                entries = fut.result()
            except KafkaException as exc:
                code = exc.args[0].code() if exc.args else None
                if code != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                    raise
                pending.append(res.name)
                continue
            out[res.name] = {k: v.value for k, v in entries.items() if v.value is not None}
        if pending:
            time.sleep(0.1)
    return out


def _drift(spec: TopicSpec, settings: CatalogSettings, partitions: int,
           configs: dict[str, str]) -> list[str]:
    found = []
    want_parts = spec.partition_count(settings)
    if partitions != want_parts:
        found.append(f"partitions {partitions} != {want_parts}")
    for key, want in spec.configs(settings).items():
        have = configs.get(key)
        if have != want:
            found.append(f"{key} {have} != {want}")
    return found


def _await_visible(admin: AdminClient, names: set[str]) -> Any:
    """Metadata once every created topic is visible (creation returns before propagation)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        metadata = admin.list_topics(timeout=TIMEOUT_S)
        if names <= set(metadata.topics) or time.monotonic() > deadline:
            return metadata
        time.sleep(0.1)


def reconcile(admin: AdminClient, settings: CatalogSettings, *, create: bool,
              fix: bool = False) -> list[TopicReport]:
    """Compare (and optionally create/fix) every catalog topic; one report per topic.

    `auto` replication (the default) follows the brokers the cluster lists now: 3
    replicas and min.insync.replicas 2 on 3 or more brokers, one replica on one broker.
    """
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    settings = settings.for_cluster(len(metadata.brokers))
    names = {spec.name: topic_name(spec, settings) for spec in CATALOG}
    missing = [s for s in CATALOG if names[s.name] not in metadata.topics]
    created: set[str] = set()
    if create and missing:
        new = [
            NewTopic(names[s.name], num_partitions=s.partition_count(settings),
                     replication_factor=settings.replication_factor, config=s.configs(settings))
            for s in missing
        ]
        for name, fut in admin.create_topics(new, request_timeout=TIMEOUT_S).items():
            try:
                fut.result()
                created.add(name)
            except KafkaException as exc:  # created concurrently by another worker: fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        metadata = _await_visible(admin, created)
    present = [names[s.name] for s in CATALOG if names[s.name] in metadata.topics]
    configs = _describe_configs(admin, present)
    reports = []
    for spec in CATALOG:
        name = names[spec.name]
        meta = metadata.topics.get(name)
        if meta is None:
            reports.append(TopicReport(name, "missing"))
            continue
        parts = len(meta.partitions)
        repl = len(meta.partitions[0].replicas) if meta.partitions else 0
        report = TopicReport(name, "created" if name in created else "ok", parts, repl,
                             {k: configs[name].get(k, "") for k in spec.configs(settings)})
        report.drift = _drift(spec, settings, parts, configs.get(name, {}))
        if report.drift:
            report.status = "drift"
            if fix:
                _fix(admin, spec, settings, name, parts)
                report.status = "fixed"
        reports.append(report)
    return reports


def _fix(admin: AdminClient, spec: TopicSpec, settings: CatalogSettings, name: str,
         partitions: int) -> None:
    entries = [
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
        for k, v in spec.configs(settings).items()
    ]
    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
    for fut in admin.incremental_alter_configs([res]).values():
        fut.result()
    want = spec.partition_count(settings)
    if want > partitions:
        for fut in admin.create_partitions([NewPartitions(name, want)]).values():
            fut.result()


def missing_from(listed: Iterable[str], settings: CatalogSettings) -> list[str]:
    """The catalog's topic names (with the settings' prefix) that `listed` lacks."""
    present = set(listed)
    return [name for name in (topic_name(spec, settings) for spec in CATALOG)
            if name not in present]


Listing = tuple[Any, str | None]  # (the cluster's metadata or None, why it is None)


def cluster_listing(kafka_conf: dict[str, Any], timeout_s: float = 10.0) -> Listing:
    """The cluster's brokers and topics, asked once: (metadata, None), or (None, why)
    when it does not answer in `timeout_s`."""
    try:
        return AdminClient(kafka_conf).list_topics(timeout=timeout_s), None
    except KafkaException as exc:
        return None, str(exc)


def missing_catalog_topics(settings: CatalogSettings, kafka_conf: dict[str, Any],
                           timeout_s: float = 10.0, listing: Listing | None = None
                           ) -> list[str] | None:
    """The catalog topics the cluster lacks; None when it cannot be asked in time (a
    broker still starting: the worker waits for it like for any broker outage).
    `listing`: what `cluster_listing` already gave, instead of asking again."""
    metadata, _ = listing if listing is not None else cluster_listing(kafka_conf, timeout_s)
    return None if metadata is None else missing_from(metadata.topics, settings)


def resolve_for_cluster(settings: CatalogSettings, kafka_conf: dict[str, Any],
                        timeout_s: float = 10.0, listing: Listing | None = None
                        ) -> CatalogSettings:
    """`settings` with `auto` replication resolved by asking the cluster its size (or
    from `listing`, what `cluster_listing` already gave).

    When the cluster cannot be reached in `timeout_s` the settings resolve as for a
    single broker and a warning says so (set KSEF_TOPIC_REPLICATION to be independent
    of it). Explicit settings are returned without asking.
    """
    if settings.replication_factor is not None:
        return settings.for_cluster(settings.replication_factor)
    metadata, why = listing if listing is not None else cluster_listing(kafka_conf, timeout_s)
    if metadata is None:
        print(f"ksef-pipeline: cannot learn the cluster's size ({why}); topics this worker "
              "creates get 1 replica (set KSEF_TOPIC_REPLICATION)", file=sys.stderr)
        return settings.for_cluster(1)
    return settings.for_cluster(len(metadata.brokers))
