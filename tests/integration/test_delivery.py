"""Sealed invoices to KSeF numbers on the real broker and the emulator: batch limits,
several sessions per seller, multi-part packages, and crash safety."""

from __future__ import annotations

import datetime as dt
import signal
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from pipeline.clock import polish_today
from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.ksef.numbers import ksef_number_is_valid, sha256_b64
from pipeline.ksef.upo import parse_upo
from tests.integration.delivery_harness import Stack, build_stack, ingest, session_steps
from tests.integration.modes.helpers import Watcher
from tests.kafka_harness import GAVE_UP_A_SHARE, OWNS_A_SHARE, KafkaSandbox, Worker
from topics.catalog import (
    CORRECTIONS,
    MODE,
    OUTCOMES,
    PACKED,
    REJECTED,
    SEALED,
    SESSIONS,
    SUBMITTED,
    UPO,
)
from topics.codec import decode
from topics.records import InvoiceOutcome, ModeState, PackedBatch, Rejection, SessionStep
from topics.upo_document import read_upo


def _invoices(plan: dict[str, int], tag: str) -> list[tuple[str, bytes]]:
    today = polish_today()
    items = []
    for nip, count in plan.items():
        for i in range(count):
            items.append((f"{tag}-{nip}-{i}", make_invoice(
                seller_nip=nip, number=f"{tag}/{i}", issue_date=today,
                profile="small" if i % 3 else "typical", seed=i)))
    return items


def _distinct_outcomes(sandbox: KafkaSandbox, expected: int, timeout_s: float
                       ) -> dict[str, set[str]]:
    def enough(msgs: list[object]) -> bool:
        return len({m.key() for m in msgs}) >= expected  # type: ignore[attr-defined]

    msgs = sandbox.consume_until(OUTCOMES, enough, timeout_s)
    numbers: dict[str, set[str]] = defaultdict(set)
    for m in msgs:
        out = decode(InvoiceOutcome, m.value())
        numbers[out.invoice_id].add(out.ksef_number)
    return numbers


def _where_missing(sandbox: KafkaSandbox, items: list[tuple[str, bytes]],
                   numbers: dict[str, set[str]], workers: list[Worker]) -> str:
    """Where the invoices without an outcome stopped: their batch and its session steps."""
    missing = {k for k, _ in items} - set(numbers)
    if not missing:
        return ""
    batches = [decode(PackedBatch, m.value()) for m in sandbox.consume_until(
        PACKED, lambda got: False, 10)]
    steps = [decode(SessionStep, m.value()) for m in sandbox.consume_until(
        SESSIONS, lambda got: False, 10)]
    rejected = {decode(Rejection, m.value()).invoice_id for m in sandbox.consume_until(
        REJECTED, lambda got: False, 5)}
    lines = [f"{len(missing)} invoices without an outcome, {len(missing & rejected)} rejected"]
    for b in batches:
        held = missing & {i.invoice_id for i in b.invoices}
        if held:
            trail = [(s.step, s.session_ref, s.at) for s in steps if s.batch_id == b.batch_id]
            lines.append(f"batch {b.batch_id}: {len(held)} of {len(b.invoices)} missing; "
                         f"steps {trail}")
    packed = {i.invoice_id for b in batches for i in b.invoices}
    lines.append(f"never packed: {len(missing - packed)}")
    lines.append(_pipeline_lines(workers))
    return "\n".join(lines)


def _pipeline_lines(workers: list[Worker], last: int = 40) -> str:
    """Each worker's log without Faust's and aiokafka's (a failure's tail is all shutdown)."""
    parts = []
    for w in workers:
        own = [line[:300] for line in w.log().splitlines()
               if '"logger": "pipeline.' in line or '"level": "error"' in line]
        parts.append(f"--- {w.log_path}, the pipeline's own lines\n" + "\n".join(own[-last:]))
    return "\n".join(parts)


def _restart_at_full_speed(stack: Stack, workers: list[Worker]) -> Worker:
    """A new worker, with the emulator's added latency removed."""
    stack.emulator.admin("latency", {"ms": 0})
    workers.append(stack.worker())
    return workers[-1]


def _assert_one_number_each(sandbox: KafkaSandbox, items: list[tuple[str, bytes]],
                            numbers: dict[str, set[str]], workers: list[Worker]) -> None:
    assert len(numbers) == len(items), _where_missing(sandbox, items, numbers, workers)
    assert all(len(n) == 1 for n in numbers.values()), "an invoice got two KSeF numbers"


def test_25000_invoices_three_sellers_many_sessions_multi_part(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    big, small1, small2 = seller_nips(3, seed=101)
    plan = {big: 21_000, small1: 2_000, small2: 2_000}
    stack = build_stack(sandbox, tmp_path, list(plan), KSEF_PART_BYTES="2000000",
                        KSEF_PACK_LINGER_S="20")
    items = _invoices(plan, "T25")
    worker = stack.worker()
    try:
        ingest(sandbox, items)
        numbers = _distinct_outcomes(sandbox, len(items), timeout_s=1500)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
    assert len(numbers) == len(items), f"{len(numbers)} outcomes of {len(items)}"
    assert all(len(n) == 1 for n in numbers.values())
    all_numbers = [next(iter(n)) for n in numbers.values()]
    assert len(set(all_numbers)) == len(items)
    assert all(ksef_number_is_valid(n) for n in all_numbers)

    batches = [decode(PackedBatch, m.value()) for m in sandbox.consume_until(
        PACKED, lambda got: sum(len(decode(PackedBatch, m.value()).invoices)
                                for m in got) >= len(items), 60)]
    closed = [s for s in session_steps(sandbox, 3) if s.step == "closed"]
    per_seller = Counter(s.seller_nip for s in closed)
    assert per_seller[big] >= 3
    assert max(len(b.invoices) for b in batches) <= 10_000
    assert sum(len(b.invoices) for b in batches) == len(items)
    full = [b for b in batches if len(b.invoices) >= 5_000]
    assert full and all(len(b.parts) >= 5 for b in full)
    held = stack.emulator_invoices()
    assert len({h for h, n, c in held if c == 200}) == len(items)

    # Every session's UPO is on `ksef.upo`, byte for byte as KSeF signed it.
    def in_upos(got: list[Any]) -> int:
        return sum(len(parse_upo(read_upo(m.value())[1]).entries) for m in got)

    upos = [read_upo(m.value()) for m in sandbox.consume_until(
        UPO, lambda got: in_upos(got) >= len(items), 120)]
    assert {e.ksef_number for _, xml in upos for e in parse_upo(xml).entries} == set(all_numbers)
    assert {meta.session_ref for meta, _ in upos} == {s.session_ref for s in closed}
    assert all(xml.startswith(b"<?xml") for _, xml in upos)


def test_sigkill_during_upload_and_after_close_settles_every_invoice_once(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    (seller,) = seller_nips(1, seed=202)
    stack = build_stack(sandbox, tmp_path, [seller], KSEF_BATCH_MAX_INVOICES="1000",
                        KSEF_PART_BYTES="300000", KSEF_UPLOAD_PARALLELISM="1")
    items = _invoices({seller: 3000}, "CR")
    stack.emulator.admin("latency", {"ms": 700})  # every request, part uploads included
    worker = stack.worker()
    workers = [worker]
    try:
        ingest(sandbox, items)

        def uploading(msgs: list[object]) -> bool:
            steps = [decode(SessionStep, m.value()) for m in msgs]  # type: ignore[attr-defined]
            return any(s.step == "part-uploaded" for s in steps)

        assert uploading(sandbox.consume_until(SESSIONS, uploading, 300)), worker.log()[-3000:]
        worker.stop(signal.SIGKILL)
        worker = stack.worker()
        workers.append(worker)

        def closed(msgs: list[object]) -> bool:
            steps = [decode(SessionStep, m.value()) for m in msgs]  # type: ignore[attr-defined]
            return any(s.step == "closed" for s in steps)

        assert closed(sandbox.consume_until(SESSIONS, closed, 300)), worker.log()[-3000:]
        worker.stop(signal.SIGKILL)
        worker = _restart_at_full_speed(stack, workers)
        numbers = _distinct_outcomes(sandbox, len(items), timeout_s=600)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
    _assert_one_number_each(sandbox, items, numbers, workers)
    held = stack.emulator_invoices()
    accepted = Counter(h for h, n, c in held if c == 200)
    assert len(accepted) == len(items) and max(accepted.values()) == 1


def test_a_batch_settled_first_never_commits_past_one_still_uploading(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """Faust alone commits past a held record at the head of a partition once a later one
    is acknowledged; then a restart would never submit the batch still uploading."""
    (seller,) = seller_nips(1, seed=404)
    stack = build_stack(sandbox, tmp_path, [seller], KSEF_BATCH_MAX_INVOICES="1000",
                        KSEF_PART_BYTES="60000", KSEF_UPLOAD_PARALLELISM="1")
    items = _invoices({seller: 1010}, "HOLD")  # sealed in any order: 1000 + 10
    stack.emulator.admin("latency", {"ms": 500})  # the 1000 go up in ~40 parts: ~20 s
    worker = stack.worker()
    workers = [worker]
    try:
        ingest(sandbox, items)
        packed = sandbox.consume(PACKED, 2, 120)
        slow, fast = (decode(PackedBatch, m.value()) for m in packed)
        assert (len(slow.invoices), len(fast.invoices)) == (1000, 10)
        assert packed[0].partition() == packed[1].partition()
        partition, slow_offset = packed[0].partition(), packed[0].offset()

        def fast_completed(msgs: list[Any]) -> bool:
            return any(s.batch_id == fast.batch_id and s.step == "completed"
                       for s in (decode(SessionStep, m.value()) for m in msgs))

        msgs = sandbox.consume_until(SESSIONS, fast_completed, 120)
        assert fast_completed(msgs), worker.log()[-3000:]
        steps = [(m, decode(SessionStep, m.value())) for m in msgs]
        fast_closed = next(m for m, s in steps if (s.batch_id, s.step) == (fast.batch_id,
                                                                              "closed"))
        assert not any((s.batch_id, s.step) == (slow.batch_id, "closed") for _, s in steps), \
            "the 1000-invoice batch closed first: the test did not hold it back"
        # Keep it uploading while the commit is awaited and checked below: at 500 ms a part
        # it could finish (and be committed, rightly) first on a slow run.
        stack.emulator.admin("latency", {"ms": 3000})
        # The upo stage acknowledges the fast `closed` step after the submit stage
        # acknowledged the fast manifest: once it is committed, so would be the manifest.
        sandbox.wait_committed(SESSIONS, fast_closed.partition(), fast_closed.offset())
        committed = sandbox.committed(PACKED, partition)
        assert committed is None or committed <= slow_offset, \
            f"committed {committed} past the manifest still uploading at {slow_offset}"
        worker.stop()
        worker = _restart_at_full_speed(stack, workers)
        numbers = _distinct_outcomes(sandbox, len(items), timeout_s=300)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
    _assert_one_number_each(sandbox, items, numbers, workers)



def test_a_filling_batch_is_never_committed_past_and_a_crash_packs_it_again(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """Pack acknowledges a batch's invoices as they come and holds back only the first
    one per partition: the commit must still stop there, so a worker killed while the
    batch fills leaves every invoice of it to be packed again, once."""
    (seller,) = seller_nips(1, seed=505)
    # (no deadline either: late in the Polish day a batch is sealed at once)
    stack = build_stack(sandbox, tmp_path, [seller], KSEF_PACK_LINGER_S="600",
                        KSEF_PACK_MAX_AGE_S="600", KSEF_DEADLINE_SAFETY_S="0")
    items = _invoices({seller: 300}, "FILL")
    worker = stack.worker()
    workers = [worker]
    try:
        ingest(sandbox, items)
        sealed = sandbox.consume(SEALED, len(items), timeout_s=180)
        assert len(sealed) == len(items), worker.log()[-3000:]
        (partition,) = {m.partition() for m in sealed}
        head = min(m.offset() for m in sealed)
        # A record pack refuses on another partition is acknowledged at once: once its
        # partition is committed, a commit ran after the batch's invoices were taken.
        other = (partition + 1) % sandbox.partitions
        producer = sandbox.producer()
        producer.produce(sandbox.name(SEALED), key=b"garbage", value=b"not a sealed record",
                         partition=other)
        assert producer.flush(30) == 0
        sandbox.wait_committed(SEALED, other, past=-1)
        committed = sandbox.committed(SEALED, partition)
        assert committed is None or committed <= head, \
            f"committed {committed} past the open batch starting at {head}"
        assert not sandbox.read_to_end(PACKED), "the batch was published: nothing to test"
        worker.stop(signal.SIGKILL)
        worker = stack.worker(KSEF_PACK_LINGER_S="1")
        workers.append(worker)
        numbers = _distinct_outcomes(sandbox, len(items), timeout_s=300)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
    _assert_one_number_each(sandbox, items, numbers, workers)
    packed = [decode(PackedBatch, m.value()) for m in sandbox.read_to_end(PACKED)]
    ids = Counter(inv.invoice_id for batch in packed for inv in batch.invoices)
    assert set(ids) == {k for k, _ in items} and max(ids.values()) == 1


def test_a_close_whose_answer_was_lost_settles_the_batch_not_refuses_it(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """KSeF closed the session but the worker never heard: the client reads the
    session's status (closed) instead of resending the close, and the batch KSeF is
    already processing comes back with KSeF numbers, not as refused or sent again."""
    (seller,) = seller_nips(1, seed=606)
    stack = build_stack(sandbox, tmp_path, [seller])
    items = _invoices({seller: 40}, "LOST")
    stack.emulator.admin("lose-response", {"path": "/v2/sessions/batch/*/close"})
    worker = stack.worker()
    workers = [worker]
    try:
        ingest(sandbox, items)
        numbers = _distinct_outcomes(sandbox, len(items), timeout_s=180)
        steps = session_steps(sandbox, 1)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
    _assert_one_number_each(sandbox, items, numbers, workers)
    assert Counter(s.step for s in steps)["opening"] == 1
    assert Counter(c for _, _, c in stack.emulator_invoices()) == {200: len(items)}


def _one_seller_per_partition(partitions: int, seed: int) -> list[str]:
    """Sellers whose manifests land on every partition (keyed by NIP, as the packer does),
    so each worker of a group owns some of them."""
    chosen: dict[int, str] = {}
    for nip in seller_nips(10 * partitions, seed=seed):
        chosen.setdefault(DefaultPartitioner()(nip.encode(), list(range(partitions)),
                                               list(range(partitions))), nip)
    assert len(chosen) == partitions
    return [chosen[p] for p in range(partitions)]


def test_a_worker_joining_mid_backlog_takes_batches_over_without_sending_them_twice(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """Batches queued behind an announced failure move to the worker that joins; the
    first worker does not send them as well (that would cost a second session each)."""
    sellers = _one_seller_per_partition(sandbox.partitions, seed=505)
    stack = build_stack(sandbox, tmp_path, sellers, KSEF_BATCH_MAX_INVOICES="50",
                        KSEF_LATARNIA_POLL_S="1", KSEF_MODE_TICK_S="1", KSEF_HOLD_PROBE_S="1")
    items = _invoices({nip: 100 for nip in sellers}, "JOIN")
    modes = Watcher(sandbox, MODE, ModeState)
    first = stack.worker()
    workers = [first]
    try:
        modes.wait(lambda s: any(x.value and x.value.state == "AVAILABLE" for x in s), 180,
                   "worker up")
        stack.emulator.admin("latarnia/announce", {"category": "FAILURE"})
        modes.wait(lambda s: any(x.value and x.value.state == "FAILURE" for x in s), 60,
                   "failure state")
        ingest(sandbox, items)
        packed = sandbox.consume(PACKED, 8, 180)  # full batches are sealed in a failure
        assert {m.partition() for m in packed} == set(range(sandbox.partitions))
        first.wait_for_log("KSeF outage announced: holding new sessions", "the hold")
        second = stack.worker()
        workers.append(second)
        # the group has settled when the first gave partitions up and the second owns some
        first.wait_for_log(GAVE_UP_A_SHARE, "the first worker's partitions shared")
        second.wait_for_log(OWNS_A_SHARE, "a share")
        ended_at = dt.datetime.now(dt.UTC)
        stack.emulator.admin("latarnia/end", {"event": "1"})
        try:
            modes.wait(lambda s: bool(s) and s[-1].value is not None
                       and s[-1].value.state == "AVAILABLE", 60, "the end in ksef.mode")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_pipeline_lines(workers)}") from None
        numbers = _distinct_outcomes(sandbox, len(items), timeout_s=300)
        steps = [decode(SessionStep, m.value()) for m in sandbox.consume_until(
            SESSIONS, lambda got: sum(decode(SessionStep, m.value()).step == "closed"
                                      for m in got) >= len(packed), 60)]
    finally:
        modes.close()
        for worker in workers:
            assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
    assert len(numbers) == len(items), _where_missing(sandbox, items, numbers, workers)
    batches = {decode(PackedBatch, m.value()).batch_id for m in packed}
    sessions = Counter(s.batch_id for s in steps if s.step == "opening")
    assert {b: sessions[b] for b in batches} == {b: 1 for b in batches}
    early = [s for s in steps if s.step == "opening" and dt.datetime.fromisoformat(s.at) < ended_at]
    assert early == [], "a session was opened while the failure was announced"
    assert all("batch session closed" in w.log() for w in workers), "one worker sent all"
    held = stack.emulator_invoices()
    assert Counter(c for _, _, c in held) == {200: len(items)}


def test_lost_spool_is_rebuilt_from_kafka(sandbox: KafkaSandbox, tmp_path: Path) -> None:
    (seller,) = seller_nips(1, seed=303)
    stack = build_stack(sandbox, tmp_path, [seller], KSEF_PART_BYTES="200000")
    items = _invoices({seller: 300}, "RB")
    packer = stack.worker("--stages", "pack")
    try:
        # the pack stage alone needs sealed input: run validate (it seals) beside it
        front = stack.worker("--stages", "validate")
        ingest(sandbox, items)
        batches = sandbox.consume_until(
            PACKED, lambda got: sum(len(decode(PackedBatch, m.value()).invoices)
                                    for m in got) >= len(items), 300)
    finally:
        assert packer.stop() == 0, packer.log()[-3000:]
        front.stop()
    originals = [decode(PackedBatch, m.value()) for m in batches]
    for batch in originals:  # the disk is lost
        for path in sorted(Path(batch.spool_dir).glob("*"), reverse=True):
            path.unlink()
    submitter = stack.worker("--stages", "submit,upo")
    try:
        numbers = _distinct_outcomes(sandbox, len(items), timeout_s=300)
        steps = session_steps(sandbox, 1)
    finally:
        assert submitter.stop() == 0, submitter.log()[-3000:]
        stack.emulator.stop()
    assert len(numbers) == len(items)
    rebuilt = [s for s in steps if s.step == "rebuilt"]
    assert {s.batch_id for s in rebuilt} == {b.batch_id for b in originals}
    assert {s.details["package_sha256"] for s in rebuilt} == {b.package_sha256 for b in originals}


def _send_a_correction(sandbox: KafkaSandbox, tmp_path: Path, lost: str, replays: int = 0,
                       redeliveries: int = 0
                       ) -> tuple[InvoiceOutcome, list[SessionStep], Stack, str, list[str]]:
    """A 450 for an original, then its technical correction with the answer to the
    request at path `lost` reset after KSeF acted on it, then `redeliveries` copies of
    its record on the corrections topic (as pack forwards it again after a crash), then
    `replays` more copies of the correction from the producer; the first outcome (all of
    them must agree), the session steps, the stack, the worker's log and the rejections
    of the correction."""
    (seller,) = seller_nips(1, seed=404)
    stack = build_stack(sandbox, tmp_path, [seller])
    today = polish_today()
    original = make_invoice(seller_nip=seller, number="TC/1", issue_date=today, seed=1)
    corrected = make_invoice(seller_nip=seller, number="TC/1", issue_date=today, seed=2)
    assert original != corrected
    stack.emulator.admin("fail-next", {"code": 450, "scope": "invoice"})
    worker = stack.worker()
    try:
        sandbox.produce(SUBMITTED, [(b"tc-original", original)])
        first = sandbox.consume(REJECTED, 1, timeout_s=180)
        assert first, worker.log()[-3000:]
        rejection = decode(Rejection, first[0].value())
        assert (rejection.stage, rejection.code) == ("upo", 450)
        stack.emulator.admin("lose-response", {"path": lost})
        sandbox.produce(SUBMITTED, [(b"tc-corrected", corrected)],
                        headers={"ksef-technical-correction-of": sha256_b64(original)})
        outcome = sandbox.consume(OUTCOMES, 1, timeout_s=180)
        if redeliveries:
            (forwarded,) = sandbox.consume(CORRECTIONS, 1, timeout_s=60)
            sandbox.deliver_again(forwarded, redeliveries)
            again = "correction delivered again; it was sent already"
            worker.wait_for_log("(?s)" + ".*".join([again] * redeliveries),
                                f"{redeliveries} redeliveries of the correction acknowledged")
        for _ in range(replays):
            assert outcome, worker.log()[-3000:]
            sandbox.produce(SUBMITTED, [(b"tc-corrected", corrected)],
                            headers={"ksef-technical-correction-of": sha256_b64(original)})
        if replays:
            outcome = sandbox.consume(OUTCOMES, 1 + replays, timeout_s=180)
            numbers = {decode(InvoiceOutcome, m.value()).ksef_number for m in outcome}
            assert len(outcome) == 1 + replays and len(numbers) == 1, outcome
        steps = [decode(SessionStep, m.value()) for m in sandbox.consume_until(
            SESSIONS, lambda got: any(decode(SessionStep, m.value()).kind == "online"
                                      and decode(SessionStep, m.value()).step == "closed"
                                      for m in got), 60)]
        refused = [decode(Rejection, m.value()).reason for m in sandbox.consume_until(
            REJECTED, lambda got: False, 3) if m.key() == b"tc-corrected"]
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
    assert outcome, f"the correction got no KSeF number; rejected: {refused}"
    result = decode(InvoiceOutcome, outcome[0].value())
    assert result.invoice_id == "tc-corrected" and ksef_number_is_valid(result.ksef_number)
    return result, steps, stack, worker.log(), refused


def test_technical_correction_goes_through_the_interactive_lane(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    # KSeF takes the correction, but the answer to closing its session is lost: the
    # client reads the session's status (closed) instead of failing or resending, and
    # the correction is not sent again (KSeF would refuse it as 21166).
    _, steps, stack, _, refused = _send_a_correction(
        sandbox, tmp_path, "/v2/sessions/online/*/close")
    assert refused == []
    assert any(s.kind == "online" and s.step == "closed" for s in steps)
    assert [s.step for s in steps if s.kind == "online"].count("opening") == 1
    assert Counter(c for _, _, c in stack.emulator_invoices()) == {450: 1, 200: 1}


def test_a_correction_whose_send_answer_was_lost_is_found_in_its_session_not_resent(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """KSeF registered the correction but the worker saw a reset: sending it again in a
    new session would be refused (21166) and the correction reported as refused. A
    replay of it afterwards gets the same KSeF number again, and is not sent either."""
    _, steps, stack, log, refused = _send_a_correction(
        sandbox, tmp_path, "/v2/sessions/online/*/invoices", replays=1, redeliveries=2)
    assert refused == []
    online = [s for s in steps if s.kind == "online"]
    assert [s.step for s in online].count("opening") == 1, online
    assert "correction found in its earlier session" in log
    # the replay gets its record once; the two redeliveries none (one more outcome in all)
    assert log.count("correction already sent; its outcome is reported again") == 1, log
    held = stack.emulator_invoices()
    assert Counter(c for _, _, c in held) == {450: 1, 200: 1}
