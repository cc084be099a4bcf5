"""`ksef-pipeline held`: seller contexts whose invoices wait for working KSeF credentials.

    ksef-pipeline held list [--json]
    ksef-pipeline held reject --nip NIP [--note TEXT] [--dry-run]

`list` reads `ksef.alerts` (the latest credentials-held / credentials-recovered alert of
each context). `reject` puts a `HeldRelease` on `ksef.control` (compacted, one partition,
followed by every submit worker): each batch of the context packed up to now that still
cannot authenticate is rejected (`no-credentials` or `auth-failed`, code 410) instead of
waiting; invoices arriving later wait as usual. If the credentials work again first, the
invoices are delivered, not rejected. Authorisation is Kafka's, as for `announce`: the
command writes with the KAFKA_* client credentials, so grant WRITE on `ksef.control`
to operators only. Exit 2 on bad input, 1 when Kafka fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import sys
from dataclasses import asdict

from pipeline.runtime.clients import kafka_producer
from pipeline.runtime.settings import KafkaSettings
from pipeline.runtime.topic_reads import catalog_records
from pipeline.stages.s3_submit.credential_hold import held_contexts, new_release
from pipeline.stages.s3_submit.held_releases import release_key
from topics import CatalogSettings, topic_name
from topics.catalog import ALERTS, CONTROL
from topics.codec import encode
from topics.records import Alert, HeldRelease


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="contexts held for their credentials (ksef.alerts)")
    listing.add_argument("--json", action="store_true")
    reject = sub.add_parser("reject", help="reject the held invoices of one context")
    reject.add_argument("--nip", required=True, help="seller context NIP")
    reject.add_argument("--note", default="", help="why (kept on the request record)")
    reject.add_argument("--dry-run", action="store_true",
                        help="print the request without publishing it")


def operator() -> str:
    """Who asks: the Kafka principal when SASL is used, else the local user."""
    return os.environ.get("KAFKA_SASL_USERNAME") or getpass.getuser()


def publish(record: HeldRelease) -> None:
    errors: list[str] = []
    producer = kafka_producer(KafkaSettings.from_env(), **{
        "enable.idempotence": True, "acks": "all", "log_level": 2})
    producer.produce(topic_name(CONTROL, CatalogSettings.from_env()),
                     key=release_key(record.seller_nip).encode(), value=encode(record),
                     on_delivery=lambda err, _: errors.append(str(err)) if err else None)
    if producer.flush(30) or errors:
        raise RuntimeError(f"request {record.request_id} not delivered: "
                           f"{'; '.join(errors) or 'timed out'}")


def _list(as_json: bool) -> int:
    try:
        held = held_contexts(catalog_records(ALERTS, Alert))
    except Exception as exc:
        print(f"ksef-pipeline held: cannot read ksef.alerts: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps([asdict(a) for _, a in sorted(held.items())], ensure_ascii=False))
        return 0
    for nip, alert in sorted(held.items()):
        print(f"{nip}  {alert.details.get('reason', '?'):<15} since {alert.at}  "
              f"{alert.details.get('error', '')}")
    print(f"{len(held)} context(s) held for credentials")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args.json)
    try:
        record = new_release(args.nip, dt.datetime.now(dt.UTC), operator(), args.note)
    except ValueError as exc:
        print(f"ksef-pipeline held: {exc}", file=sys.stderr)
        return 2
    if not args.dry_run:
        try:
            publish(record)
        except Exception as exc:
            print(f"ksef-pipeline held: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(asdict(record), ensure_ascii=False))
    return 0
