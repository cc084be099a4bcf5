"""Integration tests run against a real Apache Kafka broker.

`ops/test` starts one and exports KAFKA_BOOTSTRAP_SERVERS; run alone, this conftest
starts a throwaway broker with the same ops scripts and stops it afterwards.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.kafka_harness import REPO, KafkaSandbox


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    run_dir = tmp_path_factory.mktemp("kafka")
    env = {**os.environ, "KAFKA_RUN_DIR": str(run_dir)}
    out = subprocess.run([str(REPO / "ops/kafka/start"), "--fresh"], env=env, check=True,
                         capture_output=True, text=True, timeout=300)
    try:
        yield out.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(REPO / "ops/kafka/stop")], env=env, check=False, timeout=120)


@pytest.fixture
def sandbox(bootstrap: str) -> KafkaSandbox:
    box = KafkaSandbox(bootstrap)
    box.create_topics()
    return box


@pytest.fixture(scope="session")
def broker_version(bootstrap: str) -> str:
    """Proves the broker is real: only a real broker answers DescribeCluster with an id."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.describe_cluster().result(30)
    assert md.cluster_id and md.nodes
    return str(md.cluster_id)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
