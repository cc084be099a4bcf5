"""`ksef-pipeline announce`: enter an outage by hand (BIP, mass media) or end one.

    ksef-pipeline announce failure --start 2026-03-02T08:00 [--end ISO] [--id ID]
    ksef-pipeline announce maintenance --start ISO --end ISO
    ksef-pipeline announce total-failure --start ISO
    ksef-pipeline announce end --id ID --at ISO

Produces a Latarnia-shaped message (source `operator`) to `ksef.announcements`
(KAFKA_BOOTSTRAP_SERVERS, KSEF_TOPIC_PREFIX). Announcing with the id of a known message,
or ending one, publishes its next version. Times without an offset are Warsaw time.
Prints the record as JSON. Exit 2 on bad input, 1 when Kafka fails.

Written straight to Kafka, the same rules hold as on a worker: a start more than five
minutes in the past (earlier than the one known) or an end set, moved or cleared is
refused (exit 2) without `--allow-backdate` / `--allow-end`, and every change is audited
on `ksef.alerts` (an `operator-change` record naming the OS user) before it is
published. Kafka's own ACLs decide who may write `ksef.announcements` this way.

With `--worker URL` the request goes to `POST URL/ksef/announcements` on a worker
instead, with `Authorization: Bearer <token>` from `--token-file` (default
KSEF_OPERATOR_TOKEN_FILE, mode 0600, `name:token`): the worker checks the token, refuses
a backdated start or an ended window without `--allow-backdate` / `--allow-end`, and
audits the change on `ksef.alerts`. Exit 2 when the worker refuses (4xx), 1 when it
cannot be reached or fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.bearer import Caller, TokenFileError, read_tokens
from pipeline.ksef.announcements import AnnouncementError
from pipeline.modes.messages import OPERATOR_KINDS, from_request, latest_by_id
from pipeline.modes.operator import (
    ALLOW_BACKDATE,
    ALLOW_END,
    assess,
    audit_alert,
    refusal,
    signed,
)
from pipeline.runtime.clients import kafka_producer
from pipeline.runtime.settings import KafkaSettings
from pipeline.runtime.topic_reads import catalog_records
from topics import CatalogSettings, topic_name
from topics.catalog import ALERTS, ANNOUNCEMENTS
from topics.codec import encode
from topics.records import Alert, Announcement


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in OPERATOR_KINDS:
        opening = sub.add_parser(kind, help=f"announce a {kind} (or revise one by --id)")
        opening.add_argument("--start", required=True, help="ISO 8601 start")
        opening.add_argument("--end", help="ISO 8601 end, if known")
        opening.add_argument("--id", help="message id (default op-<kind>-<start UTC>)")
        opening.add_argument("--title", default="")
        opening.add_argument("--text", default="")
        opening.add_argument("--dry-run", action="store_true",
                             help="print the record without publishing it")
        _worker_options(opening)
    end = sub.add_parser("end", help="end (or move the end of) an announced outage")
    end.add_argument("--id", required=True, help="id of the message to end")
    end.add_argument("--at", required=True, help="ISO 8601 end time")
    end.add_argument("--dry-run", action="store_true")
    _worker_options(end)


def _worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--worker", metavar="URL",
                        help="post to this worker's /ksef/announcements (bearer token, "
                        "audited) instead of writing to Kafka")
    parser.add_argument("--token-file",
                        default=os.environ.get("KSEF_OPERATOR_TOKEN_FILE"),
                        help="with --worker: the operator token file, 0600 `name:token` "
                        "(default $KSEF_OPERATOR_TOKEN_FILE)")
    parser.add_argument("--allow-backdate", action="store_true",
                        help="the start really lies in the past (audited)")
    parser.add_argument("--allow-end", action="store_true",
                        help="end, move or clear the end of a known message (audited)")


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    """The operator request (`messages.from_request`'s body) the command line asks for."""
    if args.kind == "end":
        return {"kind": "end", "id": args.id, "at": args.at}
    return {"kind": args.kind, "start": args.start, "end": args.end, "id": args.id,
            "title": args.title, "text": args.text}


def build(args: argparse.Namespace, known: dict[str, Announcement],
          now: dt.datetime) -> Announcement:
    """The record the command line asks for (raises AnnouncementError)."""
    return from_request(request_body(args), known, now)


def post_to_worker(args: argparse.Namespace) -> int:
    """`POST <worker>/ksef/announcements` with the operator's bearer token."""
    if not args.token_file:
        print("ksef-pipeline announce: --worker needs --token-file or KSEF_OPERATOR_TOKEN_FILE",
              file=sys.stderr)
        return 2
    try:
        token = read_tokens(Path(args.token_file))[0].token
    except TokenFileError as exc:
        print(f"ksef-pipeline announce: {exc}", file=sys.stderr)
        return 2
    body = {k: v for k, v in request_body(args).items() if v not in (None, "")}
    body.update({"allow_backdate": args.allow_backdate, "allow_end": args.allow_end})
    url = args.worker.rstrip("/") + "/ksef/announcements"
    request = urllib.request.Request(
        url, method="POST", data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(response.read().decode("utf-8"))
            return 0
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        print(f"ksef-pipeline announce: {url}: HTTP {exc.code}: {detail}", file=sys.stderr)
        return 2 if 400 <= exc.code < 500 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"ksef-pipeline announce: {url}: {exc}", file=sys.stderr)
        return 1


def publish(record: Announcement, audit: Alert) -> None:
    """The audit record first, then the announcement (nothing unaudited gets out)."""
    errors: list[str] = []
    producer = kafka_producer(KafkaSettings.from_env(), **{
        "enable.idempotence": True, "acks": "all", "log_level": 2})
    catalog = CatalogSettings.from_env()

    def delivered(err: Any, _msg: Any) -> None:
        if err:
            errors.append(str(err))

    producer.produce(topic_name(ALERTS, catalog), key=audit.alert_id.encode(),
                     value=encode(audit), on_delivery=delivered)
    if producer.flush(30) or errors:
        raise RuntimeError(f"audit record of {record.id} not delivered: "
                           f"{'; '.join(errors) or 'timed out'}; nothing published")
    producer.produce(topic_name(ANNOUNCEMENTS, catalog), key=record.id.encode(),
                     value=encode(record), on_delivery=delivered)
    if producer.flush(30) or errors:
        raise RuntimeError(f"announcement {record.id} not delivered: "
                           f"{'; '.join(errors) or 'timed out'}")


def guard(record: Announcement, known: dict[str, Announcement], args: argparse.Namespace,
          now: dt.datetime) -> tuple[Announcement, Alert] | str:
    """The record signed with who publishes it and its audit record, when the flags allow
    the change, or why it is refused."""
    change = assess(record, known.get(record.id), now)
    allowed = {ALLOW_BACKDATE: args.allow_backdate, ALLOW_END: args.allow_end}
    refused = refusal(record, change, allowed, now,
                      hint=lambda name: f"add --{name.replace('_', '-')}")
    if refused is not None:
        return refused.message
    caller = Caller(name=f"{getpass.getuser()}@cli", fingerprint="kafka-write")
    record = signed(record, caller)
    return record, audit_alert(record, caller, change, allowed, now, remote=None)


def run(args: argparse.Namespace) -> int:
    if args.worker and not args.dry_run:
        return post_to_worker(args)
    needs_topic = not args.dry_run or args.kind == "end"
    try:
        known = latest_by_id(catalog_records(ANNOUNCEMENTS, Announcement) if needs_topic else [])
    except Exception as exc:
        print(f"ksef-pipeline announce: cannot read ksef.announcements: {exc}", file=sys.stderr)
        return 1
    now = dt.datetime.now(dt.UTC)
    try:
        record = build(args, known, now)
    except AnnouncementError as exc:
        print(f"ksef-pipeline announce: {exc}", file=sys.stderr)
        return 2
    if not args.dry_run:
        guarded = guard(record, known, args, now)
        if isinstance(guarded, str):
            print(f"ksef-pipeline announce: {guarded}", file=sys.stderr)
            return 2
        record, audit = guarded
        try:
            publish(record, audit)
        except Exception as exc:
            print(f"ksef-pipeline announce: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(asdict(record), ensure_ascii=False))
    return 0
