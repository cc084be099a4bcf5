"""The foundation runs on a real broker: catalog topics, both client families, a Faust agent."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from confluent_kafka.admin import AdminClient

from pipeline.runtime.topic_admin import reconcile
from tests.kafka_harness import KafkaSandbox, start_worker
from topics import CATALOG
from topics.catalog import CORRECTIONS, SEALED, SUBMITTED


def test_catalog_create_is_idempotent(sandbox: KafkaSandbox, broker_version: str) -> None:
    admin = AdminClient({"bootstrap.servers": sandbox.bootstrap})
    again = reconcile(admin, sandbox.settings, create=True)
    assert [r.status for r in again] == ["ok"] * len(CATALOG)
    by_name = {r.name: r for r in again}
    sealed = by_name[sandbox.name(SEALED)]
    assert int(sealed.configs["max.message.bytes"]) >= 4 * 1024 * 1024
    submitted = by_name[sandbox.name(SUBMITTED)]
    assert int(sealed.configs["retention.ms"]) > int(submitted.configs["retention.ms"])


async def test_confluent_produce_aiokafka_consume(sandbox: KafkaSandbox) -> None:
    payloads = [(f"inv-{i}".encode(), b"<Faktura>%d</Faktura>" % i) for i in range(50)]
    sandbox.produce(SUBMITTED, payloads, headers={"ksef-source": "test"})
    consumer = AIOKafkaConsumer(sandbox.name(SUBMITTED), bootstrap_servers=sandbox.bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        got: dict[bytes, bytes] = {}
        async with asyncio.timeout(60):
            while len(got) < len(payloads):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for r in records:
                        assert dict(r.headers)["ksef-source"] == b"test"
                        got[r.key] = r.value
    finally:
        await consumer.stop()
    assert got == dict(payloads)


def test_faust_agent_moves_records_between_catalog_topics(sandbox: KafkaSandbox,
                                                         tmp_path: Path) -> None:
    worker = start_worker(sandbox, tmp_path, "--stages", "", "--module",
                          "tests.integration.relay_agent")
    try:
        payloads = [(f"inv-{i}".encode(), f"<x>{i}</x>".encode()) for i in range(200)]
        sandbox.produce(SUBMITTED, payloads)
        out = sandbox.consume(CORRECTIONS, len(payloads), timeout_s=120)
        assert {(m.key(), m.value()) for m in out} == set(payloads), worker.log()[-3000:]
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]


def test_a_worker_refuses_to_start_on_a_cluster_without_the_catalog(
        bootstrap: str, tmp_path: Path) -> None:
    """Before, it started and logged "Topic ... not found" some 2,000 times a second."""
    bare = KafkaSandbox(bootstrap)  # a prefix with no topics: `topics create` never ran
    worker = start_worker(bare, tmp_path, "--stages", "mode")
    code = worker.proc.wait(timeout=120)
    log = worker.log()
    assert code == 2, log[-2000:]
    assert "the cluster lacks" in log and "run `ksef-pipeline topics create` first" in log
    assert bare.name(CATALOG[0]) in log  # the first missing topic is named
    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert not any(t.startswith(bare.prefix) for t in admin.list_topics(timeout=30).topics)
