"""`ksef-pipeline ksef-number`: check (or make) a KSeF number.

    ksef-pipeline ksef-number check N      exit 0 valid, 1 invalid (reason on stderr)
    ksef-pipeline ksef-number make NIP YYYY-MM-DD HEX12

Both print one JSON line on stdout; `check` also explains an invalid number on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from pipeline.ksef.numbers import ksef_number, ksef_number_problem


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="{check,make}")
    check = actions.add_parser("check", help="validate a KSeF number (format and CRC-8)")
    check.add_argument("number", help="the 35-character KSeF number")
    make = actions.add_parser("make", help="build a KSeF number with its CRC-8")
    make.add_argument("nip", help="seller NIP, 10 digits")
    make.add_argument("date", help="acquisition date YYYY-MM-DD")
    make.add_argument("technical", help="technical part, up to 12 hex digits")


def _check(number: str) -> int:
    problem = ksef_number_problem(number)
    print(json.dumps({"number": number, "valid": problem is None, "reason": problem}))
    if problem is not None:
        print(
            f"ksef-pipeline ksef-number: {number!r} is not a valid KSeF number: {problem}",
            file=sys.stderr,
        )
        return 1
    return 0


def _make(nip: str, date: str, technical: str) -> int:
    try:
        number = ksef_number(nip, dt.date.fromisoformat(date), int(technical, 16))
    except ValueError as exc:
        print(f"ksef-pipeline ksef-number: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"number": number}))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        return _check(args.number)
    return _make(args.nip, args.date, args.technical)
