"""`ksef-pipeline emulator-ctl`: outages, latency, forced errors, Latarnia announcements and
credentials (test certificates, permissions, revocation, certificate clock) on an emulator."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("KSEF_EMULATOR_URL"),
                        help="emulator base or API URL (default $KSEF_EMULATOR_URL)")
    parser.add_argument("--admin-token-file",
                        default=os.environ.get("KSEF_EMULATOR_ADMIN_TOKEN_FILE"),
                        help="the emulator's admin token file, 0600 (default "
                        "$KSEF_EMULATOR_ADMIN_TOKEN_FILE)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("info", help="show URLs, limits and active faults")
    down = sub.add_parser("down", help="take the KSeF API down")
    down.add_argument("--mode", choices=("503", "refuse", "429"), default="503",
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
    mint = sub.add_parser("mint-cert", help="make a self-signed test certificate and key for "
                          "a NIP (local, no emulator needed; the key file is 0600)")
    mint.add_argument("nip")
    mint.add_argument("--key-type", choices=("rsa", "ec"), default="ec",
                      help="RSA 2048 or EC P-256 (default ec)")
    mint.add_argument("--shape", choices=("seal", "person"), default="seal",
                      help="seal: organizationIdentifier VATPL-NIP; person: serialNumber "
                      "TINPL-NIP")
    mint.add_argument("--days", type=float, default=365, help="validity (default 365)")
    mint.add_argument("--out", default=".", help="directory for NIP.crt.pem and NIP.key.pem")
    grant = sub.add_parser("grant", help="let a subject authenticate in a context")
    grant.add_argument("subject", help="NIP, PESEL or SHA-256 certificate fingerprint")
    grant.add_argument("--context", required=True, help="context NIP")
    grant.add_argument("--type", choices=("Nip", "Pesel", "Fingerprint"), default="Nip")
    revoke = sub.add_parser("revoke-cert", help="revoke a certificate by serial (hex)")
    revoke.add_argument("serial")
    revoke.add_argument("--reason", choices=("Unspecified", "Superseded", "KeyCompromise"),
                        default="Unspecified")
    clock = sub.add_parser("clock", help="shift the clock certificates are judged by")
    clock.add_argument("--offset-seconds", type=float, default=0.0)
    clock.add_argument("--now", help="ISO 8601 instant instead of an offset")
    sub.add_parser("reset", help="clear every fault and rate-limit counter, and the "
                   "certificate clock's offset")
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
    if action == "grant":
        return "permissions", {"context": args.context, "subjectType": args.type,
                               "subject": args.subject}
    if action == "revoke-cert":
        return "certificates/revoke", {"serial": args.serial, "reason": args.reason}
    if action == "clock":
        return "clock", ({"now": args.now} if args.now
                         else {"offsetSeconds": args.offset_seconds})
    return action, None


def _mint(args: argparse.Namespace) -> int:
    """Write NIP.crt.pem / NIP.key.pem and print where they are, with serial and fingerprint."""
    from pathlib import Path

    from pipeline.emulator.selfsigned import mint
    from pipeline.ksef.numbers import nip_is_valid

    if not nip_is_valid(args.nip):
        print(f"emulator-ctl: {args.nip!r} is not a valid NIP", file=sys.stderr)
        return 2
    credential = mint(args.nip, args.key_type, shape=args.shape, days=args.days)
    cert_path, key_path = credential.write(Path(args.out), args.nip)
    print(json.dumps({"certificate": str(cert_path), "privateKey": str(key_path),
                      "serial": credential.serial_hex, "fingerprint": credential.fingerprint,
                      "keyType": args.key_type, "validTo":
                      credential.certificate.not_valid_after_utc.isoformat()}, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    from pipeline.emulator.control import ControlError, admin_token, call

    if args.action == "mint-cert":
        return _mint(args)
    if not args.url:
        print("emulator-ctl: give --url or set KSEF_EMULATOR_URL", file=sys.stderr)
        return 2
    action, body = _request(args)
    try:
        answer = call(args.url, action, body, token=admin_token(args.admin_token_file))
    except ControlError as exc:
        print(f"emulator-ctl: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0
