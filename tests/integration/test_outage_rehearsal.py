"""The outage rehearsal (issue 7's acceptance) on the real broker and the emulator:
API down + failure announced, 20,000 invoices pile up `open`; the end is announced and
every deadline becomes 7 business days after it; KSeF answers again and the backlog
drains in full batches, earliest deadline first, none late; `ksef.deadlines` agrees with
the rules core for every invoice."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipeline.clock import polish_today
from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.ksef.announcements import parse_time, polish_date
from pipeline.ksef.calendar import add_business_days
from pipeline.modes.audit import disagreements
from tests.integration.delivery_harness import build_stack, ingest
from tests.integration.modes.helpers import Watcher, latest_values
from tests.kafka_harness import KafkaSandbox
from topics.catalog import DEADLINES, MODE, OUTCOMES, PACKED, SESSIONS
from topics.records import DeadlineRecord, InvoiceOutcome, ModeState, PackedBatch, SessionStep

INVOICES = 20_000


latest = latest_values


def test_outage_backlog_drains_in_full_batches_on_time(sandbox: KafkaSandbox,
                                                      tmp_path: Path) -> None:
    (nip,) = seller_nips(1, seed=77)
    stack = build_stack(sandbox, tmp_path, [nip], KSEF_LATARNIA_POLL_S="1",
                        KSEF_LATARNIA_UNREACHABLE_AFTER_S="3", KSEF_MODE_TICK_S="1",
                        KSEF_DEADLINE_CHECK_S="5", KSEF_LIMITS="test", KSEF_HOLD_PROBE_S="1")
    emulator = stack.emulator
    worker = stack.worker()
    deadlines = Watcher(sandbox, DEADLINES, DeadlineRecord)
    modes = Watcher(sandbox, MODE, ModeState)
    try:
        modes.wait(lambda s: any(x.value and x.value.state == "AVAILABLE" for x in s), 180,
                   "worker up")
        emulator.admin("down", {"mode": "503"})
        emulator.admin("latarnia/announce", {"category": "FAILURE"})
        modes.wait(lambda s: any(x.value and x.value.state == "FAILURE" for x in s), 60,
                   "failure state")
        today = polish_today()
        ingest(sandbox, [(f"o-{i}", make_invoice(seller_nip=nip, number=f"FV/O/{i}",
                                                 issue_date=today, seed=i, profile="small"))
                         for i in range(INVOICES)])
        deadlines.wait(lambda seen: len(latest(seen)) >= INVOICES, 900, "pending deadlines")
        piled = latest(deadlines.seen)
        assert {(r.status, r.deadline) for r in piled.values()} == {("open", None)}

        emulator.admin("latarnia/end", {"event": "1"})
        deadlines.wait(lambda seen: {r.status for r in latest(seen).values()} == {"due"}, 300,
                       "deadlines after the end")
        ended = modes.wait(lambda s: any(x.value and x.value.state == "AVAILABLE"
                                         and len(x.value.announcements) >= 2 for x in s),
                           60, "state after the end")
        state = next(x.value for x in reversed(ended) if x.value and x.value.state ==
                     "AVAILABLE")
        due = latest(deadlines.seen)
        end_day = max(dt.date.fromisoformat(r.deadline or "") for r in due.values())
        assert len(due) == INVOICES
        assert disagreements(list(due.values()), state) == []
        window_end = state.windows[-1].end
        assert window_end is not None
        expected = add_business_days(polish_date(parse_time(window_end)), 7)
        assert {r.deadline for r in due.values()} == {expected.isoformat()} == {
            end_day.isoformat()}

        emulator.admin("up")
        outcomes = Watcher(sandbox, OUTCOMES, InvoiceOutcome)
        outcomes.wait(lambda seen: len({s.key for s in seen}) >= INVOICES, 1200, "outcomes")
        deadlines.wait(lambda seen: not latest(seen), 300, "tombstones for every invoice")
    finally:
        deadlines.close()
        modes.close()
        assert worker.stop() == 0, worker.log()[-3000:]
        emulator.stop()

    late = [o.value for o in outcomes.seen if o.value and
            dt.date.fromisoformat(o.value.acquisition_date[:10]) > expected]
    assert late == []
    batches = [b.value for b in Watcher(sandbox, PACKED, PackedBatch).wait(
        lambda seen: sum(len(b.value.invoices) for b in seen if b.value) >= INVOICES, 60,
        "manifests") if b.value]
    steps = [s.value for s in Watcher(sandbox, SESSIONS, SessionStep).wait(
        lambda seen: sum(1 for s in seen if s.value and s.value.step == "closed")
        >= len(batches), 60, "sessions") if s.value]
    closed = [s for s in steps if s.step == "closed" and s.kind == "batch"]
    assert sum(s.details["invoice_count"] for s in closed) / len(closed) >= 9_500
    by_id = {b.batch_id: b for b in batches}
    # ksef.sessions is keyed by batch id: the steps of different batches are on different
    # partitions, read in no particular order; their times say which session opened first
    opened = [by_id[s.batch_id].earliest_deadline or "9999"
              for s in sorted(steps, key=lambda s: dt.datetime.fromisoformat(s.at))
              if s.step == "opening"]
    assert opened == sorted(opened), "sessions not opened earliest deadline first"
