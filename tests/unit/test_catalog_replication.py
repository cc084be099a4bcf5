"""Replication of the catalog's topics follows the cluster unless it is set."""

from __future__ import annotations

import pytest

from topics import CatalogSettings
from topics.catalog import SUBMITTED


@pytest.mark.parametrize(("brokers", "replication", "min_isr"),
                         [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_auto_replication_follows_the_cluster(brokers: int, replication: int,
                                              min_isr: int) -> None:
    resolved = CatalogSettings().for_cluster(brokers)
    assert (resolved.replication_factor, resolved.min_insync_replicas) == (replication, min_isr)
    assert SUBMITTED.configs(resolved)["min.insync.replicas"] == str(min_isr)


def test_explicit_settings_win_over_the_cluster_size() -> None:
    assert CatalogSettings(replication_factor=1).for_cluster(3).min_insync_replicas == 1
    both = CatalogSettings(replication_factor=3, min_insync_replicas=3).for_cluster(1)
    assert (both.replication_factor, both.min_insync_replicas) == (3, 3)
    # a replication factor alone implies its min ISR
    assert SUBMITTED.configs(CatalogSettings(replication_factor=3))["min.insync.replicas"] == "2"


def test_unresolved_settings_cannot_name_a_min_isr() -> None:
    with pytest.raises(ValueError, match="for_cluster"):
        SUBMITTED.configs(CatalogSettings())


def test_env_takes_auto_or_a_positive_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KSEF_TOPIC_REPLICATION", raising=False)
    monkeypatch.delenv("KSEF_TOPIC_MIN_ISR", raising=False)
    assert CatalogSettings.from_env().replication_factor is None
    monkeypatch.setenv("KSEF_TOPIC_REPLICATION", "auto")
    monkeypatch.setenv("KSEF_TOPIC_MIN_ISR", "2")
    settings = CatalogSettings.from_env()
    assert (settings.replication_factor, settings.min_insync_replicas) == (None, 2)
    monkeypatch.setenv("KSEF_TOPIC_REPLICATION", "3")
    assert CatalogSettings.from_env().replication_factor == 3
    for bad in ("0", "three"):
        monkeypatch.setenv("KSEF_TOPIC_REPLICATION", bad)
        with pytest.raises(ValueError, match="KSEF_TOPIC_REPLICATION"):
            CatalogSettings.from_env()


def test_a_worker_asks_the_cluster_only_for_auto_replication(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from confluent_kafka import KafkaException

    from pipeline.runtime import topic_admin
    asked: list[float] = []

    class ThreeBrokers:
        def __init__(self, conf: dict[str, object]) -> None:
            pass

        def list_topics(self, timeout: float) -> SimpleNamespace:
            asked.append(timeout)
            return SimpleNamespace(brokers={1: "a", 2: "b", 3: "c"})

    monkeypatch.setattr(topic_admin, "AdminClient", ThreeBrokers)
    resolved = topic_admin.resolve_for_cluster(CatalogSettings(), {})
    assert (resolved.replication_factor, resolved.min_insync_replicas) == (3, 2)
    explicit = topic_admin.resolve_for_cluster(CatalogSettings(replication_factor=1), {})
    assert (explicit.replication_factor, explicit.min_insync_replicas) == (1, 1)
    assert len(asked) == 1

    class Unreachable(ThreeBrokers):
        def list_topics(self, timeout: float) -> SimpleNamespace:
            raise KafkaException("transport failure")

    monkeypatch.setattr(topic_admin, "AdminClient", Unreachable)
    fallback = topic_admin.resolve_for_cluster(CatalogSettings(), {})
    assert (fallback.replication_factor, fallback.min_insync_replicas) == (1, 1)
    assert "set KSEF_TOPIC_REPLICATION" in capsys.readouterr().err
