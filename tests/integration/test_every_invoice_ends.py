"""Every invoice ends with exactly one final record, promptly, whatever was skipped or
replayed before it (issue: the pack stall and the silent replay)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from pipeline.clock import polish_today
from pipeline.demo.samples import make_invoice
from tests.integration.delivery_harness import build_stack, ingest
from tests.integration.test_delivery import _one_seller_per_partition, _pipeline_lines
from tests.kafka_harness import KafkaSandbox
from topics.catalog import OUTCOMES, SESSIONS
from topics.codec import decode
from topics.records import InvoiceOutcome, SessionStep

LINGER_S = 3
ROUND_TRIP_S = 60  # one batch session on the emulator, on a loaded 2-core machine


def _outcomes(sandbox: KafkaSandbox, expected: int, timeout_s: float) -> list[object]:
    return sandbox.consume(OUTCOMES, expected, timeout_s=timeout_s)


def test_a_replay_of_accepted_invoices_gets_the_same_outcomes_without_a_session(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """Replayed minutes after their packing (pack used to drop them as "recently
    packed": no record at all); they get their outcome records again, identical, and
    KSeF sees no second session."""
    (seller,) = _one_seller_per_partition(sandbox.partitions, seed=606)[:1]
    stack = build_stack(sandbox, tmp_path, [seller], KSEF_PACK_LINGER_S=str(LINGER_S))
    today = polish_today()
    items = [(f"RP-{i}", make_invoice(seller_nip=seller, number=f"RP/{i}", issue_date=today,
                                      seed=i)) for i in range(3)]
    worker = stack.worker()
    try:
        ingest(sandbox, items)
        first = _outcomes(sandbox, 3, 180)
        assert len(first) == 3, _pipeline_lines([worker])
        ingest(sandbox, items)  # the producer replays them (same ids, same bytes)
        both = _outcomes(sandbox, 6, ROUND_TRIP_S)
        # every step written so far (to the end offsets): the one session's opening is
        # asserted below, and a reader slow to start could see nothing in a few idle seconds
        steps = [decode(SessionStep, m.value()) for m in sandbox.read_to_end(SESSIONS)]
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
    assert len(both) == 6, f"replays without a record; {_pipeline_lines([worker])}"
    by_id: dict[bytes, set[bytes]] = {}
    for m in both:
        by_id.setdefault(m.key(), set()).add(m.value())  # type: ignore[attr-defined]
    assert all(len(v) == 1 for v in by_id.values()), "a replay got a different record"
    assert Counter(s.step for s in steps)["opening"] == 1, steps
    assert "its outcome is emitted again" in worker.log()
    assert Counter(c for _, _, c in stack.emulator_invoices()) == {200: 3}


def test_a_lone_invoice_after_a_skipped_record_on_another_partition_leaves_at_once(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """A record pack acknowledges without holding it (here a replay) used to leave the
    stage's backlog view behind, so every later quiet batch waited for more traffic on
    that partition (or the 300 s age limit). The lone invoice of another seller, on
    another partition, must get its outcome within the linger and one session."""
    seller_a, seller_b = _one_seller_per_partition(sandbox.partitions, seed=707)[:2]
    stack = build_stack(sandbox, tmp_path, [seller_a, seller_b],
                        KSEF_PACK_LINGER_S=str(LINGER_S), KSEF_PACK_MAX_AGE_S="300")
    today = polish_today()
    first = ("LN-A-1", make_invoice(seller_nip=seller_a, number="LN/A1", issue_date=today,
                                    seed=1))
    lone = ("LN-B-1", make_invoice(seller_nip=seller_b, number="LN/B1", issue_date=today,
                                   seed=2))
    worker = stack.worker()
    try:
        ingest(sandbox, [first])
        assert len(_outcomes(sandbox, 1, 180)) == 1, _pipeline_lines([worker])
        sent = time.monotonic()
        ingest(sandbox, [first, lone])  # the replay is acknowledged, not held, by pack
        got = sandbox.consume_until(OUTCOMES, lambda msgs: any(
            m.key() == b"LN-B-1" for m in msgs), LINGER_S + ROUND_TRIP_S)
        waited = time.monotonic() - sent
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
    lone_out = [decode(InvoiceOutcome, m.value()) for m in got if m.key() == b"LN-B-1"]
    assert lone_out, f"the lone invoice waited {waited:.0f} s; {_pipeline_lines([worker])}"
