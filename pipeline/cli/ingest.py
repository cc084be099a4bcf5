"""`ksef-pipeline ingest PATH...`: send invoice XML files into the pipeline."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="XML files or directories of .xml")
    parser.add_argument("--source", help="ksef-source header (which billing system)")
    parser.add_argument("--seller-nip", help="ksef-seller-nip header for every invoice")
    parser.add_argument("--id", choices=["stem", "path"], default="stem",
                        help="invoice id: file name without .xml (default) or relative path")
    parser.add_argument("--bootstrap", help="bootstrap servers (default KAFKA_BOOTSTRAP_SERVERS)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from pipeline.progress import Progress
    from pipeline.runtime.invoice_producer import (
        IngestError,
        InvoiceProducer,
        colliding_ids,
        invoice_files,
        invoice_id,
    )
    from pipeline.runtime.settings import KafkaSettings
    from pipeline.runtime.topic_admin import missing_catalog_topics
    from topics import CatalogSettings

    try:
        files = list(invoice_files(args.paths))
    except FileNotFoundError as exc:
        print(f"ksef-pipeline ingest: {exc}", file=sys.stderr)
        return 2
    if not files:
        print("ksef-pipeline ingest: no .xml files under "
              + ", ".join(str(p) for p in args.paths), file=sys.stderr)
        return 2
    collisions = colliding_ids(files, args.id)
    if collisions:
        shown = "; ".join(f"{key!r}: {', '.join(str(p) for p in paths)}"
                          for key, paths in list(collisions.items())[:5])
        more = f" (and {len(collisions) - 5} more)" if len(collisions) > 5 else ""
        hint = " (try --id path)" if args.id == "stem" else ""
        print(f"ksef-pipeline ingest: {len(collisions)} invoice id(s) shared by several files, "
              f"nothing sent{hint}: {shown}{more}", file=sys.stderr)
        return 2
    kafka = KafkaSettings.from_env()
    if args.bootstrap:
        kafka = replace(kafka, bootstrap_servers=args.bootstrap)
    producer = InvoiceProducer(kafka)
    missing = missing_catalog_topics(CatalogSettings.from_env(), kafka.confluent(log_level=3))
    if missing and producer.topic in missing:  # None: the cluster did not answer in time
        print(f"ksef-pipeline ingest: topic {producer.topic} does not exist on the cluster; "
              "run `ksef-pipeline topics create` first (same KSEF_TOPIC_* settings); nothing "
              "sent", file=sys.stderr)
        return 2
    bar = Progress(len(files), "ingest")
    started = time.monotonic()
    for path in files:
        producer.send(invoice_id(path, args.id), path.read_bytes(),
                      seller_nip=args.seller_nip, source=args.source)
        bar.advance()
    try:
        delivered = producer.flush()
    except IngestError as exc:
        bar.close()
        print(f"ksef-pipeline ingest: {exc}", file=sys.stderr)
        return 1
    bar.close()
    seconds = time.monotonic() - started
    rate = delivered / seconds if seconds > 0 else 0.0
    print(f"ingested {delivered} invoices in {seconds:.2f} s ({rate:,.0f} invoices/s) "
          f"to {producer.topic}")
    return 0
