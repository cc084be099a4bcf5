"""`ksef-pipeline deadlines`: pending invoices and their legal deadlines, from the
compacted `ksef.deadlines` (KAFKA_BOOTSTRAP_SERVERS, KSEF_TOPIC_PREFIX).

    ksef-pipeline deadlines [--seller NIP] [--due-before DATE] [--json] [--limit N]
    ksef-pipeline deadlines --check     (every record vs the rules core; exit 1 if any differs)

Earliest deadline first; open (no deadline yet) and exempt invoices come last and are
left out by --due-before. Table on stdout with a summary line, or a JSON array.
Invoices of a seller context held because it cannot authenticate to KSeF (the latest
credential alert on `ksef.alerts`) are marked `held: credentials (<reason>)`: they are at
risk until an operator fixes the credentials or rejects them (`ksef-pipeline held`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict

from pipeline.modes.audit import disagreements
from pipeline.runtime.topic_reads import catalog_records
from pipeline.stages.s3_submit.credential_hold import held_contexts
from topics.catalog import ALERTS, DEADLINES, MODE
from topics.records import Alert, DeadlineRecord, ModeState

COLUMNS = ("deadline", "status", "mode", "held", "seller_nip", "issue_date", "invoice_id",
           "invoice_number", "basis")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seller", help="only this seller NIP")
    parser.add_argument("--due-before", metavar="DATE",
                        help="only deadlines on or before DATE (YYYY-MM-DD)")
    parser.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    parser.add_argument("--limit", type=int, help="show at most N invoices")
    parser.add_argument("--check", action="store_true",
                        help="verify every record against the rules core under the latest "
                             "ksef.mode (exit 1 on any difference)")


def select(records: Iterable[DeadlineRecord], seller: str | None,
           due_before: dt.date | None) -> list[DeadlineRecord]:
    """Filtered and in submission order: earliest deadline, then seller, then id."""
    cutoff = None if due_before is None else due_before.isoformat()
    chosen = [r for r in records
              if (seller is None or r.seller_nip == seller)
              and (cutoff is None or (r.deadline is not None and r.deadline <= cutoff))]
    chosen.sort(key=lambda r: (r.deadline is None, r.deadline or "", r.status, r.seller_nip,
                               r.invoice_id))
    return chosen


def held_marks(alerts: Iterable[Alert]) -> dict[str, str]:
    """Seller NIP -> `held: credentials (<reason>)` for contexts held right now."""
    return {nip: f"held: credentials ({alert.details.get('reason', 'other')})"
            for nip, alert in held_contexts(alerts).items()}


def summary(records: Sequence[DeadlineRecord], held: Mapping[str, str] | None = None) -> str:
    by_status = Counter(r.status for r in records)
    parts = ", ".join(f"{status} {n:,}" for status, n in sorted(by_status.items()))
    waiting = sum(1 for r in records if held and r.seller_nip in held)
    if waiting:
        parts += f"; {waiting:,} held for credentials of {len(held or {})} context(s)"
    return f"{len(records):,} pending invoice(s)" + (f" ({parts})" if parts else "")


def _value(record: DeadlineRecord, column: str, held: Mapping[str, str]) -> str:
    if column == "held":
        return held.get(record.seller_nip, "-")
    return str(getattr(record, column) or "-")


def table(records: Sequence[DeadlineRecord], held: Mapping[str, str] | None = None) -> str:
    rows = [[_value(r, c, held or {}) for c in COLUMNS] for r in records]
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(COLUMNS)]
    widths[-1] = len(COLUMNS[-1])  # the basis is free text: never pad it
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    return "\n".join(lines)


def check(records: list[DeadlineRecord]) -> int:
    states = catalog_records(MODE, ModeState)
    problems = disagreements(records, states[0] if states else None)
    for line in problems[:20]:
        print(line)
    if len(problems) > 20:
        print(f"... and {len(problems) - 20} more")
    print(f"{len(records) - len(problems):,} of {len(records):,} record(s) agree with the "
          "rules core")
    return 1 if problems else 0


def run(args: argparse.Namespace) -> int:
    try:
        due_before = None if args.due_before is None else dt.date.fromisoformat(args.due_before)
    except ValueError:
        print(f"ksef-pipeline deadlines: --due-before {args.due_before!r} is not a date "
              "YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        records = select(catalog_records(DEADLINES, DeadlineRecord), args.seller,
                         due_before)
    except Exception as exc:
        print(f"ksef-pipeline deadlines: cannot read ksef.deadlines: {exc}", file=sys.stderr)
        return 1
    if args.check:
        return check(records)
    try:
        held = held_marks(catalog_records(ALERTS, Alert))
    except Exception as exc:
        print(f"ksef-pipeline deadlines: cannot read ksef.alerts (held contexts not "
              f"marked): {exc}", file=sys.stderr)
        held = {}
    shown = records[: args.limit] if args.limit is not None else records
    if args.json:
        print(json.dumps([{**asdict(r), "held": held.get(r.seller_nip)} for r in shown],
                         ensure_ascii=False, indent=1))
        return 0
    print(table(shown, held))
    more = f"; showing {len(shown):,}" if len(shown) < len(records) else ""
    print(f"\n{summary(records, held)}{more}")
    return 0
