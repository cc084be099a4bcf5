"""`ksef-pipeline deadline`: an invoice's KSeF submission deadline as one JSON line.

Output: {"deadline": "YYYY-MM-DD" | null, "status": "due"|"open"|"exempt", "mode": ...,
"basis": ...}. With `--mode auto` the mode reported is the one derived from the
announcements. Bad input (mode, date, events file) -> message on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

from pipeline.ksef.announcements import AnnouncementError, AnnouncementHistory
from pipeline.ksef.calendar import CalendarRangeError, add_business_days
from pipeline.ksef.deadlines import AUTO, deadline_for

MODES = ("online", "offline24", "offline", "emergency", AUTO)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class InputError(Exception):
    """Bad command-line input; the message is shown as is."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", required=True, choices=MODES, help="issuing mode, or auto")
    parser.add_argument("--issued", required=True, help="issue date P_1, YYYY-MM-DD (Polish)")
    parser.add_argument(
        "--events",
        metavar="FILE.json",
        help="JSON array of Latarnia messages ('-' = stdin); none = no announcements",
    )


def parse_issued(text: str) -> dt.date:
    if not _DATE.fullmatch(text.strip()):
        raise InputError(f"--issued must be a date YYYY-MM-DD, got {text!r}")
    try:
        issued = dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise InputError(f"--issued {text!r} is not a calendar date: {exc}") from exc
    try:
        add_business_days(issued, 0)
    except CalendarRangeError as exc:
        raise InputError(f"--issued {text}: {exc}") from exc
    return issued


def load_history(path: str | None) -> AnnouncementHistory:
    if path is None:
        return AnnouncementHistory()
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read events file {path}: {exc}") from exc
    try:
        document: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"events file {path} is not valid JSON: {exc}") from exc
    try:
        return AnnouncementHistory.from_json(document)
    except AnnouncementError as exc:
        raise InputError(f"events file {path}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    try:
        issued = parse_issued(args.issued)
        history = load_history(args.events)
        result = deadline_for(issued, args.mode, history)
    except (InputError, CalendarRangeError, ValueError) as exc:
        print(f"ksef-pipeline deadline: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict(), ensure_ascii=False))
    return 0
