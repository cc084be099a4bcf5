"""Worker settings read from the environment reach the Kafka clients they are meant for."""

from __future__ import annotations

import faust
import pytest

from pipeline.runtime.settings import WorkerSettings


def test_produce_request_timeout_is_bounded_by_default_and_settable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KSEF_PRODUCER_REQUEST_TIMEOUT_S", raising=False)
    assert WorkerSettings.from_env().producer_request_timeout_s == 120.0
    monkeypatch.setenv("KSEF_PRODUCER_REQUEST_TIMEOUT_S", "7.5")
    assert WorkerSettings.from_env().producer_request_timeout_s == 7.5


def test_faust_gives_the_produce_timeout_to_aiokafka_as_its_request_timeout() -> None:
    """The bound only helps if Faust's producer passes it on (its default is 20 minutes)."""
    app = faust.App("settings-probe", broker="kafka://127.0.0.1:9",
                    producer_request_timeout=7.5)
    producer = app.transport.create_producer()
    assert producer._settings_default()["request_timeout_ms"] == 7500
    assert faust.App("default-probe").conf.producer_request_timeout == 1200.0
