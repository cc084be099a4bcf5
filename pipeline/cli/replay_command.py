"""`ksef-pipeline replay --from-rejected`: send rejected invoices through the pipeline
again, byte for byte, after the cause was fixed (token, attachment policy, a lost spool,
KSeF's own 5xx, ...).

    ksef-pipeline replay --from-rejected [--reason R ...] [--since ISO] [--dry-run]
                         [--keyring FILE]

--reason takes a reason name (`schema`, `spool-lost`, ...) or a code (`500`), and may
be repeated. Reads `ksef.invoices.rejected`, skips invoices accepted since, fetches the
original records and produces them to `ksef.invoices.submitted` with a progress bar.
Exit 0 when everything chosen was replayed, 1 when some could not be (listed), 2 on bad
input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pipeline.ksef.announcements import AnnouncementError, parse_time
from pipeline.ksef.keyring import Keyring, KeyringError
from pipeline.modes.replay import Replayable, from_sealed, from_submitted, plan
from pipeline.progress import Progress
from pipeline.runtime.invoice_producer import InvoiceProducer
from pipeline.runtime.keyring_file import NoKeyringError, load_keyring, read_keyring_file
from pipeline.runtime.settings import KafkaSettings
from pipeline.runtime.topic_reads import RawRecord, fetch_records, read_all, read_latest
from topics import CatalogSettings, topic_name
from topics.catalog import OUTCOMES, REJECTED, SUBMITTED
from topics.records import KafkaRef, Rejection

MAX_LISTED = 10


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-rejected", action="store_true", required=True,
                        help="replay invoices from ksef.invoices.rejected")
    parser.add_argument("--reason", action="append",
                        help="only this rejection reason or code (repeatable)")
    parser.add_argument("--since", help="only rejections at or after this ISO time")
    parser.add_argument("--keyring", help="keyring JSON to open invoices rejected after "
                        "sealing (default KSEF_KEYRING_FILE / KSEF_KEYRING)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be replayed, send nothing")


def run(args: argparse.Namespace) -> int:
    try:
        since = None if args.since is None else parse_time(args.since, "--since")
    except AnnouncementError as exc:
        print(f"ksef-pipeline replay: {exc}", file=sys.stderr)
        return 2
    kafka, catalog = KafkaSettings.from_env(), CatalogSettings.from_env()
    rejections = asyncio.run(read_all(kafka, topic_name(REJECTED, catalog), Rejection))
    accepted = {k.decode("utf-8", "replace")
                for k in read_latest(kafka, topic_name(OUTCOMES, catalog)).live()}
    chosen = plan(rejections, accepted, set(args.reason) if args.reason else None, since)
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(chosen.skipped.items()))
    print(f"{len(chosen.chosen)} invoice(s) to replay"
          + (f"; skipped {skipped}" if skipped else ""), file=sys.stderr)
    if args.dry_run:
        for rejection in chosen.chosen:
            print(f"{rejection.invoice_id}\t{rejection.rejected_at}\t{rejection.code}\t"
                  f"{rejection.reason}")
        return 0
    try:
        keyring = _keyring(args.keyring)
    except KeyringError as exc:
        print(f"ksef-pipeline replay: {exc}", file=sys.stderr)
        return 2
    return replay(chosen.chosen, keyring, kafka, catalog)


def _keyring(path: str | None) -> Keyring | None:
    if path:
        return read_keyring_file(Path(path))  # private (0600) or refused
    try:
        return load_keyring()
    except NoKeyringError:
        return None  # only needed for invoices rejected after sealing; they will say so


def _invoice(rejection: Rejection, raw_by_ref: dict[KafkaRef, RawRecord], submitted: str,
             keyring: Keyring | None) -> Replayable:
    origin = rejection.origin
    assert origin is not None
    raw = raw_by_ref.get(origin)
    if raw is None:
        raise LookupError(f"{rejection.invoice_id}: {origin.topic}[{origin.partition}]@"
                          f"{origin.offset} is gone (compacted or past retention)")
    if origin.topic == submitted:
        return from_submitted(rejection, raw)
    return from_sealed(rejection, raw, keyring)


def replay(rejections: list[Rejection], keyring: Keyring | None, kafka: KafkaSettings,
           catalog: CatalogSettings) -> int:
    """Produce each rejected invoice again; returns the exit status."""
    refs = [r.origin for r in rejections if r.origin is not None]
    reading = Progress(len(refs), "read originals")
    fetched = fetch_records(kafka, refs, progress=reading.advance)
    reading.close()
    bar = Progress(len(rejections), "replay")
    submitted = topic_name(SUBMITTED, catalog)
    failures: list[str] = []
    with InvoiceProducer(kafka, catalog) as producer:
        for rejection in rejections:
            bar.advance()
            try:
                invoice = _invoice(rejection, fetched, submitted, keyring)
            except Exception as exc:  # reported below, one line per invoice
                failures.append(str(exc))
                continue
            producer.send(invoice.invoice_id, invoice.xml, seller_nip=invoice.seller_nip,
                          source=invoice.source, attachments=invoice.attachments,
                          technical_correction_of=invoice.technical_correction_of)
    bar.close()
    print(f"replayed {len(rejections) - len(failures)} invoice(s)"
          + (f"; {len(failures)} could not be:" if failures else ""), file=sys.stderr)
    for line in failures[:MAX_LISTED]:
        print(f"  {line}", file=sys.stderr)
    if len(failures) > MAX_LISTED:
        print(f"  ... and {len(failures) - MAX_LISTED} more", file=sys.stderr)
    return 1 if failures else 0
