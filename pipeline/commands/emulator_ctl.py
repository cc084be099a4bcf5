"""`ksef-pipeline emulator-ctl`: outages, latency, forced errors and Latarnia announcements
on a running emulator."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("KSEF_EMULATOR_URL"),
                        help="emulator base or API URL (default $KSEF_EMULATOR_URL)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("info", help="show URLs, limits and active faults")
    down = sub.add_parser("down", help="take the KSeF API down")
    down.add_argument("--mode", choices=("503", "refuse"), default="503",
                      help="answer 503, or reset every API connection")
    sub.add_parser("up", help="bring the API back")
    latency = sub.add_parser("latency", help="delay every API request")
    latency.add_argument("ms", type=int)
    fail = sub.add_parser("fail-next", help="force the status of the next invoices/sessions")
    fail.add_argument("code", type=int, help="status code, e.g. 500, 430, 450 (or 415 for "
                      "a session)")
    fail.add_argument("--count", type=int, default=1)
    fail.add_argument("--scope", choices=("invoice", "session"), default="invoice")
    lose = sub.add_parser("lose-response", help="carry out the next matching requests but "
                          "reset the connection instead of answering")
    lose.add_argument("path", help="path glob, e.g. '/v2/sessions/batch/*/close'")
    lose.add_argument("--count", type=int, default=1)
    announce = sub.add_parser("announce", help="publish (or revise) a Latarnia message")
    announce.add_argument("--category", choices=("FAILURE", "TOTAL_FAILURE", "MAINTENANCE"),
                          default="FAILURE")
    announce.add_argument("--start", help="ISO 8601 start (default now)")
    announce.add_argument("--end", help="ISO 8601 end, if known")
    announce.add_argument("--title")
    announce.add_argument("--text")
    announce.add_argument("--id", help="revise this message id (publishes a new version)")
    end = sub.add_parser("end", help="end a Latarnia event")
    end.add_argument("event", help="event id or message id")
    end.add_argument("--at", help="ISO 8601 end time (default now)")
    sub.add_parser("latarnia-down", help="make Latarnia itself unavailable")
    sub.add_parser("latarnia-up", help="make Latarnia available again")
    token = sub.add_parser("token", help="issue a KSeF token for a NIP")
    token.add_argument("nip")
    sub.add_parser("reset", help="clear every fault and rate-limit counter")
    sub.add_parser("sweep", help="apply session timeouts now")


def _request(args: argparse.Namespace) -> tuple[str, dict[str, Any] | None]:
    action = args.action
    if action == "down":
        return "down", {"mode": args.mode}
    if action == "latency":
        return "latency", {"ms": args.ms}
    if action == "fail-next":
        return "fail-next", {"code": args.code, "count": args.count, "scope": args.scope}
    if action == "lose-response":
        return "lose-response", {"path": args.path, "count": args.count}
    if action == "announce":
        body = {"category": args.category, "start": args.start, "end": args.end,
                "title": args.title, "text": args.text, "id": args.id}
        return "latarnia/announce", {k: v for k, v in body.items() if v is not None}
    if action == "end":
        return "latarnia/end", {"event": args.event, **({"at": args.at} if args.at else {})}
    if action in ("latarnia-down", "latarnia-up"):
        return "latarnia/" + action.split("-")[1], None
    if action == "token":
        return "ksef-tokens", {"nip": args.nip}
    return action, None


def run(args: argparse.Namespace) -> int:
    from pipeline.emulator.control import ControlError, call

    if not args.url:
        print("emulator-ctl: give --url or set KSEF_EMULATOR_URL", file=sys.stderr)
        return 2
    action, body = _request(args)
    try:
        answer = call(args.url, action, body)
    except ControlError as exc:
        print(f"emulator-ctl: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0
