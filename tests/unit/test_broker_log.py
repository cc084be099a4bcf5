"""A lost broker is logged once per state change, with timed reminders, not per request."""

from __future__ import annotations

import logging

from pipeline.runtime.broker_log import STATE_LOGGER, BrokerStateFilter, is_broker_failure


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


CONNECT = ("aiokafka", "Unable connect to node with id 1: [Errno 111] Connect call failed "
           "('127.0.0.1', 53197)")
FETCH = ("aiokafka.consumer.fetcher", "Failed fetch messages from 1: NodeNotReadyError: "
         "Attempt to send a request to node which is not ready (node id 1).")
RDKAFKA = ("librdkafka", "FAIL [thrd:127.0.0.1:9092/bootstrap]: Connect to "
           "ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)")


def test_recognises_the_clients_connection_errors_and_nothing_else() -> None:
    for name, msg in (CONNECT, FETCH, RDKAFKA,
                      ("aiokafka", "Unable to update metadata from [1]"),
                      ("aiokafka.consumer.group_coordinator",
                       "Group Coordinator Request failed: NodeNotReadyError: not ready")):
        assert is_broker_failure(record(name, msg)), msg
    assert not is_broker_failure(record("pipeline.stages.s2_pack.pack", "Unable connect to KSeF"))
    assert not is_broker_failure(record("aiokafka", "Unable connect", logging.INFO))
    assert not is_broker_failure(record("aiokafka", "OffsetCommit failed for group x"))


def test_one_line_when_lost_then_reminders_with_the_count_then_one_when_back() -> None:
    clock = Clock()
    gate = BrokerStateFilter(reminder_s=30, quiet_s=5, clock=clock)
    gate._start_watch = lambda: None  # type: ignore[method-assign]  # driven by hand here
    passed = []
    for i in range(3000):  # 100 errors a second for 30 s
        clock.now = 1000.0 + i / 100
        rec = record(*(CONNECT, FETCH, RDKAFKA)[i % 3])
        if gate.filter(rec):
            passed.append(rec)
    assert [r.name for r in passed] == [STATE_LOGGER]
    assert passed[0].getMessage().startswith("broker unreachable (aiokafka: Unable connect")
    assert gate.unreachable

    clock.now = 1030.5
    reminder = record(*FETCH)
    assert gate.filter(reminder)
    assert reminder.getMessage().startswith(
        "broker still unreachable after 30 s; 2999 similar lines suppressed (latest "
        "aiokafka.consumer.fetcher: Failed fetch")
    other = record("pipeline.stages.s2_pack.pack", "batch sealed", logging.INFO)
    assert gate.filter(other) and other.getMessage() == "batch sealed"

    clock.now = 1034.0
    assert gate.check_recovered() is None  # 3.5 s without an error is not yet "back"
    clock.now = 1036.0
    back = gate.check_recovered()
    assert back is not None and back.startswith("broker reachable again")
    assert not gate.unreachable

    clock.now = 1100.0
    again = record(*CONNECT)
    assert gate.filter(again)
    assert again.getMessage().startswith("broker unreachable")


def test_the_watch_thread_says_reachable_again() -> None:
    import time

    gate = BrokerStateFilter(reminder_s=30, quiet_s=0.4)
    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            seen.append(rec.getMessage())

    catch = Catch()
    logging.getLogger(STATE_LOGGER).addHandler(catch)
    try:
        assert gate.filter(record(*CONNECT))
        deadline = time.monotonic() + 30  # generous: a loaded 2-core machine
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)  # the watch thread logs on its own; nothing else to await
    finally:
        logging.getLogger(STATE_LOGGER).removeHandler(catch)
    assert len(seen) == 1 and seen[0].startswith("broker reachable again")


def test_the_group_less_readers_librdkafka_lines_go_through_the_same_filter() -> None:
    import time

    from pipeline.runtime.settings import KafkaSettings
    from pipeline.runtime.topic_reads import _consumer

    lines: list[str] = []

    class Catch(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            lines.append(rec.getMessage())

    catch = Catch()
    gate = BrokerStateFilter(reminder_s=1.0, quiet_s=60)
    catch.addFilter(gate)
    logging.getLogger("librdkafka").addHandler(catch)
    consumer = _consumer(KafkaSettings(bootstrap_servers="127.0.0.1:1"))  # refused
    try:
        consumer.subscribe(["nothing-here"])
        # 2.5 s from the first line (when librdkafka gets to it: later on a loaded machine)
        deadline, first_at = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            consumer.poll(0.1)  # serves librdkafka's log queue
            if lines and first_at is None:
                first_at = time.monotonic()
                deadline = first_at + 2.5
    finally:
        consumer.close()
        logging.getLogger("librdkafka").removeHandler(catch)
    assert lines and lines[0].startswith("broker unreachable (librdkafka: "), lines
    assert "Connection refused" in lines[0]
    assert 1 <= len(lines) - 1 <= 3 and all("still unreachable" in x for x in lines[1:]), lines
