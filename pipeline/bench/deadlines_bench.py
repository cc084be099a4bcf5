"""Seconds to recompute every pending deadline after one announcement.

A `DeadlineBook` holds N pending invoices (default 1,000,000) of 1,000 sellers across 8
partitions, issued over 30 Polish days in all four modes, while a failure announced
with no end is in force. Then MF announces its end (a new version of the message): the
book recomputes each (issue date, mode) group with the rules core and builds the record
of every invoice whose deadline changed, as bytes ready for `ksef.deadlines`. That is
what is timed; filling the book is not, nor the Kafka producer (a worker hands the
records to it as they come).

    python -m pipeline.bench.deadlines_bench [--invoices 1000000] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import time
from typing import Any

from pipeline.ksef.announcements import AnnouncementHistory, Message
from pipeline.ksef.modes import Mode
from pipeline.modes.pending import DeadlineBook
from topics.records import DeadlineRecord

FIRST_DAY = dt.date(2026, 2, 9)
DAYS = 30
SELLERS = 1_000
PARTITIONS = 8
FAILURE_START = "2026-02-26T08:00:00+01:00"
FAILURE_END = "2026-03-03T15:00:00+01:00"
MODES = (Mode.ONLINE, Mode.OFFLINE24, Mode.OFFLINE, Mode.EMERGENCY)


def failure(version: int, end: str | None, published: str) -> Message:
    return Message.from_json({
        "id": "bench-1-start", "eventId": "bench-1", "category": "FAILURE",
        "type": "FAILURE_START", "start": FAILURE_START, "end": end, "version": version,
        "published": published})


def filled_book(invoices: int) -> DeadlineBook:
    """A book of `invoices` pending invoices under an open failure (not timed)."""
    book = DeadlineBook(AnnouncementHistory([failure(1, None, FAILURE_START)]))
    sellers = [f"{5_000_000_000 + 7 * s:010d}" for s in range(SELLERS)]
    per_partition: list[list[DeadlineRecord]] = [[] for _ in range(PARTITIONS)]
    spread = random.Random(7)  # invoice ids hash to partitions independently of content
    for i in range(invoices):
        issued = FIRST_DAY + dt.timedelta(days=i % DAYS)
        mode = MODES[(i // DAYS) % len(MODES)]
        deadline = book.deadline(issued, mode)
        per_partition[spread.randrange(PARTITIONS)].append(DeadlineRecord(
            invoice_id=f"inv-{i:08d}", seller_nip=sellers[i % SELLERS],
            issue_date=issued.isoformat(), status=deadline.status.value, mode=mode.value,
            basis=deadline.basis, computed_at="2026-03-03T15:00:00+01:00",
            deadline=None if deadline.due is None else deadline.due.isoformat(),
            invoice_number=f"FV/{i}/2026", sealed_at="2026-03-03T15:00:00+01:00"))
    now = dt.datetime(2026, 3, 3, 15, tzinfo=dt.UTC)
    for partition, records in enumerate(per_partition):
        corrections = book.load(partition, records, now)
        assert not corrections, "filled records must agree with the book"
    return book


def run(invoices: int) -> dict[str, Any]:
    book = filled_book(invoices)
    announced_end = AnnouncementHistory([failure(1, None, FAILURE_START),
                                         failure(2, FAILURE_END, FAILURE_END)])
    started = time.perf_counter()
    dirty = book.set_history(announced_end)
    changed = 0
    payload = 0
    for group in dirty:
        for _, value in group.records(group.deadline, "2026-03-03T15:00:01.000+00:00"):
            changed += 1
            payload += len(value)
        group.published = group.deadline
    seconds = time.perf_counter() - started
    return {"invoices": len(book), "groups": sum(1 for _ in book.groups()),
            "changed_groups": len(dirty), "changed_records": changed,
            "record_bytes": payload, "seconds": round(seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.invoices)
    if args.json:
        print(json.dumps(result))
        return
    print(f"recompute {result['invoices']:,} pending invoices after one announcement: "
          f"{result['seconds']:.2f} s ({result['groups']} groups, {result['changed_groups']} "
          f"changed, {result['changed_records']:,} records rebuilt)")


if __name__ == "__main__":
    main()
