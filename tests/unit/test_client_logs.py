"""librdkafka's log lines go to Python logging, never raw to the process's stderr."""

from __future__ import annotations

import logging
import time

import pytest

from pipeline.runtime.clients import kafka_producer
from pipeline.runtime.settings import KafkaSettings


def test_a_client_that_cannot_connect_logs_through_python_logging(
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG, logger="librdkafka")
    producer = kafka_producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
            r.name == "librdkafka" for r in caplog.records):
        producer.poll(0.2)  # serves librdkafka's queued log lines to the logger
    lines = [r.getMessage() for r in caplog.records if r.name == "librdkafka"]
    assert lines, "librdkafka logged nothing through Python logging"
    assert any("127.0.0.1:1" in line for line in lines)
    assert "|rdkafka#" not in capfd.readouterr().err  # the raw "%3|...|FAIL|rdkafka#" form
