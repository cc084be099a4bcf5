"""`ksef-pipeline topics create|describe`: the catalog on a cluster, with drift report."""

from __future__ import annotations

import argparse
import sys

import orjson

from pipeline.runtime.clients import kafka_admin


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["create", "describe"])
    parser.add_argument("--bootstrap", help="bootstrap servers (default KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--partitions", type=int,
                        help="partitions per topic (KSEF_TOPIC_PARTITIONS)")
    parser.add_argument("--replication", type=int,
                        help="replication factor (KSEF_TOPIC_REPLICATION; default: "
                             "follow the cluster, 3 on 3 or more brokers)")
    parser.add_argument("--min-isr", type=int,
                        help="min.insync.replicas (KSEF_TOPIC_MIN_ISR; default: "
                             "2 with 3 or more replicas, else 1)")
    parser.add_argument("--fix", action="store_true",
                        help="with create: align drifted configs and raise partition counts")
    parser.add_argument("--json", action="store_true", help="one JSON object per topic")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    from pipeline.runtime.settings import KafkaSettings
    from pipeline.runtime.topic_admin import reconcile
    from topics import CatalogSettings

    kafka = KafkaSettings.from_env()
    if args.bootstrap:
        kafka = replace(kafka, bootstrap_servers=args.bootstrap)
    settings = CatalogSettings.from_env()
    for attr, value in (("partitions", args.partitions), ("replication_factor", args.replication),
                        ("min_insync_replicas", args.min_isr)):
        if value is not None:
            settings = replace(settings, **{attr: value})
    admin = kafka_admin(kafka, log_level=4)
    try:
        reports = reconcile(admin, settings, create=args.action == "create", fix=args.fix)
    except Exception as exc:
        print(f"ksef-pipeline topics: cannot reach {kafka.bootstrap_servers}: {exc}",
              file=sys.stderr)
        return 1
    if args.json:
        for r in reports:
            sys.stdout.buffer.write(orjson.dumps(asdict(r)) + b"\n")
    else:
        width = max(len(r.name) for r in reports)
        print(f"{'topic'.ljust(width)}  status   parts repl  configs")
        for r in reports:
            conf = " ".join(f"{k}={v}" for k, v in r.configs.items())
            print(f"{r.name.ljust(width)}  {r.status:<8} {r.partitions or '-':>5} "
                  f"{r.replication or '-':>4}  {conf}")
            for d in r.drift:
                print(f"{''.ljust(width)}    drift: {d}")
    bad = [r for r in reports if r.status in ("missing", "drift")]
    return 1 if bad else 0
