"""`ksef-pipeline announce`: enter an outage by hand (BIP, mass media) or end one.

    ksef-pipeline announce failure --start 2026-03-02T08:00 [--end ISO] [--id ID]
    ksef-pipeline announce maintenance --start ISO --end ISO
    ksef-pipeline announce total-failure --start ISO
    ksef-pipeline announce end --id ID --at ISO

Produces a Latarnia-shaped message (source `operator`) to `ksef.announcements`
(KAFKA_BOOTSTRAP_SERVERS, KSEF_TOPIC_PREFIX). Announcing with the id of a known message,
or ending one, publishes its next version. Times without an offset are Warsaw time.
Prints the record as JSON. Exit 2 on bad input, 1 when Kafka fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import asdict

from confluent_kafka import Producer

from pipeline.ksef.announcements import AnnouncementError
from pipeline.modes.messages import OPERATOR_KINDS, from_request, latest_by_id
from pipeline.modes.topic_reads import catalog_records
from pipeline.settings import KafkaSettings
from topics import CatalogSettings, topic_name
from topics.catalog import ANNOUNCEMENTS
from topics.codec import encode
from topics.records import Announcement


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
    end = sub.add_parser("end", help="end (or move the end of) an announced outage")
    end.add_argument("--id", required=True, help="id of the message to end")
    end.add_argument("--at", required=True, help="ISO 8601 end time")
    end.add_argument("--dry-run", action="store_true")


def build(args: argparse.Namespace, known: dict[str, Announcement],
          now: dt.datetime) -> Announcement:
    """The record the command line asks for (raises AnnouncementError)."""
    if args.kind == "end":
        body = {"kind": "end", "id": args.id, "at": args.at}
    else:
        body = {"kind": args.kind, "start": args.start, "end": args.end, "id": args.id,
                "title": args.title, "text": args.text}
    return from_request(body, known, now)


def publish(record: Announcement) -> None:
    errors: list[str] = []
    producer = Producer(KafkaSettings.from_env().confluent(
        **{"enable.idempotence": True, "acks": "all", "log_level": 2}))
    producer.produce(topic_name(ANNOUNCEMENTS, CatalogSettings.from_env()),
                     key=record.id.encode(), value=encode(record),
                     on_delivery=lambda err, _: errors.append(str(err)) if err else None)
    if producer.flush(30) or errors:
        raise RuntimeError(f"announcement {record.id} not delivered: "
                           f"{'; '.join(errors) or 'timed out'}")


def run(args: argparse.Namespace) -> int:
    needs_topic = not args.dry_run or args.kind == "end"
    try:
        known = latest_by_id(catalog_records(ANNOUNCEMENTS, Announcement) if needs_topic else [])
    except Exception as exc:
        print(f"ksef-pipeline announce: cannot read ksef.announcements: {exc}", file=sys.stderr)
        return 1
    try:
        record = build(args, known, dt.datetime.now(dt.UTC))
    except AnnouncementError as exc:
        print(f"ksef-pipeline announce: {exc}", file=sys.stderr)
        return 2
    if not args.dry_run:
        try:
            publish(record)
        except Exception as exc:
            print(f"ksef-pipeline announce: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(asdict(record), ensure_ascii=False))
    return 0
