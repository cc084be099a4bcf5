"""The mode-state stream on the real broker (and the emulator's Latarnia and API):
Latarnia unreachable -> UNKNOWN, total failure -> exempt, a moved window end ->
only the affected deadlines, self-observed outage -> offline24."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.clock import polish_today
from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator.process import EmulatorProcess, start_emulator
from pipeline.ksef.deadlines import compute_deadline
from pipeline.ksef.modes import Mode, mode_for_new_invoice
from pipeline.ksef_api import KsefError, emulator
from pipeline.ksef_api.client import KsefClient
from pipeline.ksef_api.retry import RetryPolicy
from pipeline.modes.audit import disagreements
from pipeline.modes.messages import from_latarnia
from pipeline.modes.observed import HealthReporter
from pipeline.modes.pending import DeadlineBook
from pipeline.modes.snapshot import history_from_mode_state
from tests.integration.modes.helpers import Watcher, latest_values
from tests.kafka_harness import REPO, TRACKS_A_SHARE, KafkaSandbox, Worker, start_worker
from topics.catalog import ALERTS, ANNOUNCEMENTS, DEADLINES, MODE, OUTCOMES, SEALED, SUBMITTED
from topics.codec import encode
from topics.records import (
    Alert,
    Announcement,
    DeadlineRecord,
    InvoiceOutcome,
    KafkaRef,
    ModeState,
    SealedInvoice,
)

SELLER = "5265877635"
FAST = {"KSEF_MODE_TICK_S": "0.5", "KSEF_DEADLINE_CHECK_S": "1", "KSEF_LATARNIA_POLL_S": "0"}


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[EmulatorProcess]:
    process = start_emulator(tmp_path / "emulator", "--limits", "test")
    try:
        yield process
    finally:
        process.stop()


def _mode_worker(sandbox: KafkaSandbox, tmp: Path, *stages: str, data_dir: Path | None = None,
                 **env: str) -> Worker:
    return start_worker(sandbox, tmp, "--stages", ",".join(stages or ("mode",)),
                        data_dir=data_dir, **{**FAST, **env})


def _first_records(invoices: Iterable[SealedInvoice], state: ModeState | None = None
                   ) -> list[tuple[bytes, bytes]]:
    """The first `ksef.deadlines` records the validate stage writes as it seals these,
    with the history of `state` (the mode state a validate worker follows)."""
    book = DeadlineBook(None if state is None else history_from_mode_state(state))
    now = dt.datetime.now(dt.UTC)
    return [(s.invoice_id.encode(), encode(book.first_record(s, now))) for s in invoices]


def _produce_first(sandbox: KafkaSandbox, records: list[tuple[bytes, bytes]]) -> None:
    """Onto `ksef.deadlines` partitioned as the pipeline's producers do (murmur2, like
    Java's): the tracker owns an invoice by the partition its id hashes to, and a record
    in another partition (librdkafka's default CRC32) is a second, stale copy."""
    producer = sandbox.producer(partitioner="murmur2_random")
    for key, value in records:
        producer.produce(sandbox.name(DEADLINES), key=key, value=value)
    assert producer.flush(30) == 0


def _sealed(invoice_id: str, issue_date: str, mode: str) -> SealedInvoice:
    return SealedInvoice(
        invoice_id=invoice_id, seller_nip=SELLER, invoice_number=f"FV/{invoice_id}",
        issue_date=issue_date, kind="VAT", size=100, sha256="aGFzaA==",
        has_attachments=False, mode=mode, key_id="k1",
        qr_code_1="https://qr", received_at="2026-03-02T10:00:00+01:00",
        sealed_at="2026-03-02T10:00:00+01:00", origin=KafkaRef("x", 0, 0))


_latest = latest_values


def _agrees_with_rules_core(records: dict[str, DeadlineRecord], state: ModeState) -> None:
    assert disagreements(records.values(), state) == []


def test_latarnia_unreachable_is_unknown_with_an_alert(
        sandbox: KafkaSandbox, tmp_path: Path, emu: EmulatorProcess) -> None:
    modes = Watcher(sandbox, MODE, ModeState)
    alerts = Watcher(sandbox, ALERTS, Alert)
    worker = _mode_worker(sandbox, tmp_path, KSEF_API_URL=emu.base_url,
                          KSEF_LATARNIA_POLL_S="0.5", KSEF_LATARNIA_UNREACHABLE_AFTER_S="1")
    try:
        modes.first(lambda s: s.state == "AVAILABLE", 120, "AVAILABLE at start")
        emu.admin("latarnia/down")
        unknown = modes.first(lambda s: s.state != "AVAILABLE", 60, "a state change")
        assert unknown.state == "UNKNOWN" and not unknown.latarnia_reachable
        assert unknown.ksef_reachable and "not a failure" in unknown.reason
        alert = alerts.first(lambda a: a.kind == "latarnia-unreachable", 30, "the alert")
        assert alert.severity == "warning" and "HTTP 503" in alert.message

        emu.admin("latarnia/up")
        emu.admin("latarnia/announce", {"category": "FAILURE"})  # polled once reachable
        failing = modes.first(lambda s: s.state == "FAILURE", 60, "the announced failure")
        assert failing.latarnia_reachable
        alerts.first(lambda a: a.kind == "latarnia-reachable", 30, "the all-clear")
    finally:
        modes.close()
        alerts.close()
        assert worker.stop() == 0, worker.log()[-3000:]
    # a clean stop closes the poller's HTTP session first: no "Unclosed ..." errors
    assert "Unclosed client session" not in worker.log()
    assert "Unclosed connector" not in worker.log()


def _announce(sandbox: KafkaSandbox, *args: str) -> Announcement:
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "announce", *args], cwd=REPO,
                         env=sandbox.env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return Announcement(**orjson.loads(out.stdout))


def test_total_failure_exempts_pending_and_new_invoices(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    deadlines = Watcher(sandbox, DEADLINES, DeadlineRecord)
    modes = Watcher(sandbox, MODE, ModeState)
    today = polish_today()
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    invoices = [(f"t-{i}", yesterday, "offline24") for i in range(12)]
    worker = _mode_worker(sandbox, tmp_path)
    try:
        _produce_first(sandbox, _first_records(_sealed(*inv) for inv in invoices))
        deadlines.wait(lambda seen: len(_latest(seen)) == len(invoices), 120, "first records")
        assert {r.status for r in _latest(deadlines.seen).values()} == {"due"}

        now = dt.datetime.now(dt.UTC)
        record = _announce(sandbox, "total-failure", "--start",
                           (now - dt.timedelta(hours=1)).isoformat(), "--id", "media-1",
                           "--allow-backdate")
        assert record.source == "operator" and record.category == "TOTAL_FAILURE"
        state = modes.first(lambda s: s.state == "TOTAL_FAILURE", 60, "TOTAL_FAILURE")
        deadlines.wait(lambda seen: {r.status for r in _latest(seen).values()} == {"exempt"},
                       60, "exemptions")
        latest = _latest(deadlines.seen)
        assert all("lifts the duty" in r.basis for r in latest.values())
        _agrees_with_rules_core(latest, state)
        history = history_from_mode_state(state)
        mode = mode_for_new_invoice(today, dt.datetime.now(dt.UTC), history,
                                    state.ksef_reachable)
        assert mode is Mode.TOTAL_FAILURE
        assert compute_deadline(today, mode, history).status.value == "exempt"
    finally:
        deadlines.close()
        modes.close()
        assert worker.stop() == 0, worker.log()[-3000:]


def _failure(event: str, start: str, end: str, published: str, version: int = 1
             ) -> Announcement:
    return from_latarnia({"id": f"{event}-start", "eventId": event, "category": "FAILURE",
                          "type": "FAILURE_START", "start": start, "end": end,
                          "version": version, "published": published})


def test_moving_a_window_end_recalculates_only_the_affected_deadlines(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    deadlines = Watcher(sandbox, DEADLINES, DeadlineRecord)
    modes = Watcher(sandbox, MODE, ModeState)
    f1 = _failure("f1", "2026-03-02T08:00:00+01:00", "2026-03-02T18:00:00+01:00",
                  "2026-03-02T08:10:00+01:00")
    f2 = _failure("f2", "2026-03-25T08:00:00+01:00", "2026-03-25T18:00:00+01:00",
                  "2026-03-25T08:10:00+01:00")
    group_a = [(f"a-{i}", "2026-03-02", "emergency") for i in range(30)]  # under f1
    group_b = [(f"b-{i}", "2026-03-25", "emergency") for i in range(20)]  # under f2
    group_c = [(f"c-{i}", "2026-03-10", "offline24") for i in range(10)]  # under neither
    invoices = group_a + group_b + group_c
    worker = _mode_worker(sandbox, tmp_path)
    try:
        sandbox.produce(ANNOUNCEMENTS, [(r.id.encode(), encode(r)) for r in (f1, f2)])
        modes.first(lambda s: len(s.announcements) == 2, 120, "both failures in ksef.mode")
        _produce_first(sandbox, _first_records(_sealed(*inv) for inv in invoices))
        deadlines.wait(lambda seen: len(_latest(seen)) == len(invoices), 120, "first records")
        assert {r.status for r in _latest(deadlines.seen).values()} == {"due"}
        before = len(deadlines.seen)

        moved = _failure("f1", "2026-03-02T08:00:00+01:00", "2026-03-04T18:00:00+01:00",
                         "2026-03-04T18:10:00+01:00", version=2)
        sandbox.produce(ANNOUNCEMENTS, [(moved.id.encode(), encode(moved))])
        marker = _failure("f2", "2026-03-25T08:00:00+01:00", "2026-03-26T18:00:00+01:00",
                          "2026-03-26T18:10:00+01:00", version=2)
        sandbox.produce(ANNOUNCEMENTS, [(marker.id.encode(), encode(marker))])
        affected = {i for i, *_ in group_a + group_b}
        deadlines.wait(lambda seen: {s.key for s in seen[before:]} >= affected, 120,
                       "recomputed records of groups a and b")
        state = modes.first(lambda s: any(a.version == 2 and a.id == "f2-start"
                                          for a in s.announcements), 30, "the latest state")
        deadlines.drain()
        after = [s.key for s in deadlines.seen[before:]]
        assert sorted(after) == sorted(affected)  # each once; none of group c
        _agrees_with_rules_core(_latest(deadlines.seen), state)
        assert _latest(deadlines.seen)["a-0"].deadline == "2026-03-13"  # 7 business days
    finally:
        deadlines.close()
        modes.close()
        assert worker.stop() == 0, worker.log()[-3000:]


def test_self_observed_outage_issues_new_invoices_offline24(
        sandbox: KafkaSandbox, tmp_path: Path, emu: EmulatorProcess) -> None:
    modes = Watcher(sandbox, MODE, ModeState)
    alerts = Watcher(sandbox, ALERTS, Alert)
    sealed = Watcher(sandbox, SEALED, SealedInvoice)
    keyring = tmp_path / "keyring.json"
    keyring.write_bytes(orjson.dumps({"active": "k1", "keys": {
        "k1": base64.b64encode(b"\x03" * 32).decode()}}))
    keyring.chmod(0o600)  # a keyring others may read is refused
    worker = start_worker(sandbox, tmp_path, "--stages", "validate,mode",
                          KSEF_KEYRING_FILE=str(keyring), **FAST)
    try:
        modes.first(lambda s: s.state == "AVAILABLE", 120, "AVAILABLE at start")
        emu.admin("down", {"mode": "503"})
        reporter = HealthReporter(_publisher(sandbox), threshold=dt.timedelta(seconds=0.5))
        asyncio.run(_call_ksef(emu, reporter, until_up=False))
        state = modes.first(lambda s: s.state == "OBSERVED_OUTAGE", 60, "OBSERVED_OUTAGE")
        assert not state.ksef_reachable and "offline24" in state.reason
        alert = alerts.first(lambda a: a.kind == "ksef-unreachable", 30, "the alert")
        assert alert.severity == "critical"

        nip = seller_nips(1, seed=5)[0]
        xml = make_invoice(seller_nip=nip, number="FV/OBS/1", issue_date=polish_today())
        sandbox.produce(SUBMITTED, [(b"obs-1", xml)])
        invoice = sealed.first(lambda s: s.invoice_id == "obs-1", 120, "the sealed invoice")
        assert invoice.mode == "offline24"

        emu.admin("up")
        asyncio.run(_call_ksef(emu, reporter, until_up=True))
        back = modes.first(lambda s: s.state == "AVAILABLE" and s.ksef_reachable
                           and any(w.source == "observed" and w.end for w in s.windows),
                           60, "AVAILABLE again")
        assert back.ksef_reachable
    finally:
        for watcher in (modes, alerts, sealed):
            watcher.close()
        assert worker.stop() == 0, worker.log()[-3000:]


def _publisher(sandbox: KafkaSandbox) -> Callable[[Announcement], Awaitable[None]]:
    async def publish(record: Announcement) -> None:
        await asyncio.to_thread(sandbox.produce, ANNOUNCEMENTS,
                                [(record.id.encode(), encode(record))])

    return publish


async def _call_ksef(emu: EmulatorProcess, reporter: HealthReporter, until_up: bool) -> None:
    """Call the emulator the way the submitter would, reporting health as it goes."""
    policy = RetryPolicy(attempts=2, base_delay=0.2, max_delay=0.4)
    async with KsefClient(emulator(emu.base_url), SELLER, policy=policy,
                          observer=reporter.observe) as client:
        for _ in range(50):
            try:
                await client.encryption_key()
                up = True
            except KsefError:
                up = False
            if up if until_up else reporter.watch.open_episode is not None:
                break
            await asyncio.sleep(0.2)  # pacing the calls like a retrying submitter
        await reporter.flush()


def test_two_workers_share_the_pending_invoices(sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """Each worker owns some `ksef.deadlines` partitions; both learn every announcement."""
    deadlines = Watcher(sandbox, DEADLINES, DeadlineRecord)
    modes = Watcher(sandbox, MODE, ModeState)
    open_failure = _failure("w1", "2026-03-02T08:00:00+01:00", "", "2026-03-02T08:10:00+01:00")
    invoices = [(f"w-{i}", "2026-03-02", "emergency") for i in range(200)]
    workers = [_mode_worker(sandbox, tmp_path), _mode_worker(sandbox, tmp_path)]
    try:
        for worker in workers:  # the group has settled when each owns some partitions
            worker.wait_for_log(TRACKS_A_SHARE, "a share")
        sandbox.produce(ANNOUNCEMENTS, [(open_failure.id.encode(), encode(open_failure))])
        modes.first(lambda s: len(s.announcements) == 1, 120, "the open failure")
        # first records as the seal stage wrote them before it knew of the failure: the
        # tracker corrects each one the current history disagrees with
        _produce_first(sandbox, _first_records(_sealed(*inv) for inv in invoices))
        deadlines.wait(lambda seen: len(_latest(seen)) == len(invoices) and {
            r.status for r in _latest(seen).values()} == {"open"}, 120, "corrected records")

        ended = _failure("w1", "2026-03-02T08:00:00+01:00", "2026-03-03T12:00:00+01:00",
                         "2026-03-03T12:05:00+01:00", version=2)
        sandbox.produce(ANNOUNCEMENTS, [(ended.id.encode(), encode(ended))])
        deadlines.wait(lambda seen: {r.status for r in _latest(seen).values()} == {"due"},
                       120, "every deadline set")
        state = modes.first(lambda s: any(a.version == 2 for a in s.announcements), 30, "v2")
        _agrees_with_rules_core(_latest(deadlines.seen), state)
        for worker in workers:  # each recomputed its own share, none all of them
            pending = [int(n) for n in re.findall(r'"pending": (\d+), "changed_groups"',
                                                   worker.log())]
            assert 0 < pending[-1] < len(invoices), pending
    finally:
        deadlines.close()
        modes.close()
        for worker in workers:
            assert worker.stop() == 0, worker.log()[-3000:]


def _outcomes(sandbox: KafkaSandbox, invoice_ids: Iterable[str]) -> None:
    producer = sandbox.producer(partitioner="murmur2_random")
    for invoice_id in invoice_ids:
        outcome = InvoiceOutcome(
            invoice_id=invoice_id, seller_nip=SELLER, invoice_number=f"FV/{invoice_id}",
            ksef_number=f"{SELLER}-20260302-0100000000AA-00", acquisition_date="2026-03-02",
            invoicing_mode="online", session_ref="s-1", sha256="aGFzaA==",
            recorded_at=dt.datetime.now(dt.UTC).isoformat())
        producer.produce(sandbox.name(OUTCOMES), key=invoice_id.encode(), value=encode(outcome))
    assert producer.flush(30) == 0


def _tombstoned(seen: list[Any], ids: list[str]) -> bool:
    """Every one of `ids` was seen on the topic, and its latest record is a tombstone."""
    return set(ids) <= {s.key for s in seen} and not set(ids) & set(_latest(seen))


def test_a_killed_tracker_restarts_on_its_pending_invoices_and_misses_no_outcome(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """SIGKILL, outcomes while it is down, restart: the pending invoices come back from
    `ksef.deadlines`, every settled invoice is tombstoned, the others stay pending."""
    deadlines = Watcher(sandbox, DEADLINES, DeadlineRecord)
    today = polish_today().isoformat()
    ids = [f"k-{i}" for i in range(60)]
    first = _mode_worker(sandbox, tmp_path)
    second = None
    try:
        first.wait_for_log(TRACKS_A_SHARE, "a share")
        _produce_first(sandbox, _first_records(_sealed(i, today, "online") for i in ids))
        _outcomes(sandbox, ids[:20])
        deadlines.wait(lambda seen: _tombstoned(seen, ids[:20]), 120, "20 tombstones")
        first.stop(signal.SIGKILL)
        _outcomes(sandbox, ids[20:40])  # while no tracker runs
        second = _mode_worker(sandbox, tmp_path, data_dir=first.data_dir)
        deadlines.wait(lambda seen: _tombstoned(seen, ids[:40]), 120, "40 tombstones")
        second.wait_for_log(TRACKS_A_SHARE, "a share")
        restarted = second.log().rpartition("DeadlineTrackerService]: Starting")[2]
        loaded = sum(int(n) for n in re.findall(
            r'"invoices": (\d+), "corrections": \d+, "event": "pending invoices loaded"',
            restarted))
        assert loaded == 40, second.log()[-3000:]  # 60 sealed, 20 settled before the kill
        deadlines.drain()
        assert set(_latest(deadlines.seen)) == set(ids[40:])  # the rest still pending
    finally:
        deadlines.close()
        if second is not None:
            assert second.stop() == 0, second.log()[-3000:]
        first.stop()
