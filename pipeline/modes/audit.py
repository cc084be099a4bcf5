"""Does `ksef.deadlines` say what the rules core says? (rehearsals, `deadlines --check`)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pipeline.ksef.deadlines import compute_deadline
from pipeline.ksef.modes import Mode
from pipeline.modes.snapshot import history_from_mode_state
from topics.records import DeadlineRecord, ModeState

FIELDS = ("deadline", "status", "mode", "basis")


def disagreements(records: Iterable[DeadlineRecord], state: ModeState | None) -> list[str]:
    """One line per record whose deadline differs from the rules core's under the
    announcements in `state` (the latest `ksef.mode` record)."""
    history = history_from_mode_state(state)
    memo: dict[tuple[str, str], dict[str, str | None]] = {}
    problems = []
    for record in records:
        key = (record.issue_date, record.mode)
        expected = memo.get(key)
        if expected is None:
            expected = memo[key] = compute_deadline(
                dt.date.fromisoformat(record.issue_date), Mode(record.mode), history).as_dict()
        wrong = [f"{f} {getattr(record, f)!r} != {expected[f]!r}" for f in FIELDS
                 if getattr(record, f) != expected[f]]
        if wrong:
            problems.append(f"{record.invoice_id}: " + "; ".join(wrong))
    return problems
