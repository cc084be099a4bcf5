"""The pack stage's bookkeeping without Faust: open batches per (seller, offline mode),
when each must flush, and the manifest record a finished package becomes."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipeline.clock import WARSAW, iso, now_utc
from pipeline.ksef.modes import Mode
from pipeline.ksef.package import BatchLimits, PackageBuilder, PackagedBatch, PackageFormat
from pipeline.ksef.package.spool import (
    SweepReport,
    batch_dir,
    check_batch_id,
    sweep_spool,
)
from pipeline.runtime.settings import PackStageSettings
from topics.packed_rows import invoice_row, packed_entry
from topics.records import KafkaRef, PackedInvoice, SealedInvoice

FILLING_S = 1.0  # an invoice added within this long: the batch is still being filled


@dataclass(frozen=True)
class PackSettings:
    spool_dir: Path
    linger_s: float = 30.0  # seal once no invoice came for this long ...
    max_age_s: float = 300.0  # ... or once the batch is this old, whichever first
    limits: BatchLimits = field(default_factory=BatchLimits)
    archive_format: PackageFormat = PackageFormat.ZIP
    deflate_level: int = 3
    deadline_safety_s: float = 3600.0  # seal a batch this long before a deadline day ends
    # ... but while invoices keep streaming into it, let it fill this long (see pack)
    deadline_fill_s: float = 10.0
    manifest_rows: bool = True  # invoices as rows (topics.packed_rows), else as objects
    # A sealed batch directory (parts only) untouched this long is swept at start-up; the
    # submit stage rebuilds it from Kafka should it still need it.
    sealed_max_age_s: float = 7 * 86400.0

    @classmethod
    def build(cls, stage: PackStageSettings, spool_dir: Path) -> PackSettings:
        """The stage's settings (read from the environment by pipeline.runtime.settings)
        as the packing decisions take them, with this worker's spool root."""
        return cls(
            spool_dir=spool_dir,
            linger_s=stage.linger_s,
            max_age_s=stage.max_age_s,
            limits=BatchLimits(max_invoices=stage.max_invoices,
                               max_part_bytes=stage.max_part_bytes),
            archive_format=PackageFormat.parse(stage.archive_format),
            deflate_level=stage.deflate_level,
            deadline_safety_s=stage.deadline_safety_s,
            deadline_fill_s=stage.deadline_fill_s,
            manifest_rows=stage.manifest_rows,
        )


def prepare_spool(settings: PackSettings) -> SweepReport:
    """At pack start-up: the spool root 0700, orphaned batch directories removed
    (`sweep_spool`: unsealed ones, and sealed ones older than `sealed_max_age_s`)."""
    try:
        return sweep_spool(settings.spool_dir, sealed_max_age_s=settings.sealed_max_age_s)
    except OSError as exc:  # packing goes on; the next start-up sweeps again
        return SweepReport(error=f"{type(exc).__name__}: {exc}")


def deadline_end(day: dt.date) -> dt.datetime:
    """The last moment of a deadline day: midnight after it, Polish time."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=WARSAW)


def batch_group(inv: SealedInvoice) -> tuple[str, bool]:
    """Invoices share a batch when they share the seller context and the offline flag
    (KSeF's `offlineMode` is declared once per batch session)."""
    return inv.seller_nip, Mode(inv.mode).is_offline


@dataclass
class OpenBatch:
    seller_nip: str
    offline_mode: bool
    builder: PackageBuilder
    opened_at: float = field(default_factory=time.monotonic)
    last_added: float = field(default_factory=time.monotonic)
    # The manifest's `invoices` list as the JSON it is published as, one row per invoice
    # (`topics.packed_rows`) appended as it is added (`ends`: where each one ends): ~0.2
    # KB per invoice in one buffer, where a PackedInvoice with its KafkaRefs and strings
    # took ~0.8 KB, and the flush splices it in without building 10,000 records. Not a
    # list of orjson outputs: each of those keeps orjson's 4 KB buffer.
    rows: bytearray = field(default_factory=bytearray)
    ends: array[int] = field(default_factory=lambda: array("L"))
    sealed_topic: str | None = None  # of every ref given in a row
    origin_topic: str | None = None  # of every origin given in a row
    rows_allowed: bool = True  # False: every invoice as an object (KSEF_PACK_ROWS=0)
    # Per partition, the event of the batch's lowest offset, left unacknowledged until the
    # manifest is published: commits stop at it (see `pack._hold`).
    heads: dict[Any, Any] = field(default_factory=dict)
    invoice_ids: set[str] = field(default_factory=set)
    earliest_deadline: dt.date | None = None

    @classmethod
    def start(cls, group: tuple[str, bool], settings: PackSettings) -> OpenBatch:
        batch_id = check_batch_id(f"{group[0]}-{uuid.uuid4().hex[:16]}")
        builder = PackageBuilder(batch_dir(settings.spool_dir, batch_id), batch_id=batch_id,
                                 fmt=settings.archive_format, level=settings.deflate_level,
                                 limits=settings.limits)
        return cls(group[0], group[1], builder, rows_allowed=settings.manifest_rows)

    @property
    def batch_id(self) -> str:
        return self.builder.batch_id

    def add(self, inv: SealedInvoice, xml: bytes | None, ref: KafkaRef,
            deflated: bytes | None = None) -> None:
        """Add the invoice: from its bytes (`xml`), or with none from its deflated stream
        and the size, CRC-32 and hash its sealed record carries."""
        if xml is not None:
            entry = self.builder.add(ref, xml, expected_hash=inv.sha256, deflated=deflated)
        elif deflated is not None and inv.crc32 is not None:
            entry = self.builder.add_deflated(ref, deflated, size=inv.size, crc32=inv.crc32,
                                              sha256=inv.sha256)
        else:
            raise ValueError(f"invoice {inv.invoice_id}: neither its bytes nor a deflated "
                             "stream with its CRC-32")
        self.invoice_ids.add(inv.invoice_id)
        self.last_added = time.monotonic()
        packed = PackedInvoice(
            invoice_id=inv.invoice_id, invoice_number=inv.invoice_number, sha256=inv.sha256,
            size=inv.size, entry=entry.entry_name, ref=ref, mode=inv.mode,
            deadline=inv.deadline, origin=inv.origin)
        if self.rows:
            self.rows += b","
        self.rows += orjson.dumps(invoice_row(packed) if self._fits_rows(packed) else packed)
        self.ends.append(len(self.rows))
        if inv.deadline is not None:
            due = dt.date.fromisoformat(inv.deadline)
            if self.earliest_deadline is None or due < self.earliest_deadline:
                self.earliest_deadline = due

    @property
    def count(self) -> int:
        return len(self.ends)

    def partitions(self) -> set[tuple[str, int]]:
        """The (topic, partition) of every invoice in the batch: each has its head."""
        return {(tp.topic, tp.partition) for tp in self.heads}

    def _fits_rows(self, inv: PackedInvoice) -> bool:
        """Whether `inv` can go as a row: its topics are the batch's (the first invoice's)."""
        if not self.rows_allowed:
            return False
        if self.sealed_topic is None:
            self.sealed_topic = inv.ref.topic
        if inv.origin is not None and self.origin_topic is None:
            self.origin_topic = inv.origin.topic
        return inv.ref.topic == self.sealed_topic and (
            inv.origin is None or inv.origin.topic == self.origin_topic)

    def packed(self) -> Iterator[tuple[str, str, str | None]]:
        """(invoice id, SHA-256, origin "topic/partition/offset" or None) of each invoice,
        read back one at a time (for the invoice ledger, once the manifest is published)."""
        view = memoryview(self.rows)
        start = 0
        for end in self.ends:
            doc = orjson.loads(view[start:end])
            start = end + 1  # past the comma
            entry = packed_entry(doc, self.sealed_topic, self.origin_topic)
            if entry is not None:
                yield entry

    def still_filling(self, settings: PackSettings, now: float) -> bool:
        """A deadline-bound batch that invoices still stream into (one came within the
        last second) gets up to `deadline_fill_s` to fill: sealing at every tick made
        hundreds of tiny sessions in the last hour of a day, and KSeF's session-open
        limit then held them back for longer than the filling takes."""
        return (now - self.last_added < FILLING_S
                and now - self.opened_at < settings.deadline_fill_s)

    def due_to_flush(self, settings: PackSettings, now: float,
                     wall: dt.datetime | None = None) -> str | None:
        """Why this batch must be sealed now, or None: `full`, `deadline`, `age`, `linger`,
        in that order. The caller may put off a linger (more records wait in Kafka) or an
        age/linger (an announced outage), so a reason it must never put off comes first:
        a linger answered before the deadline would shadow the deadline for good."""
        if not self.rows:
            return None
        if self.builder.count >= settings.limits.max_invoices:
            return "full"
        if self.earliest_deadline is not None:
            left = deadline_end(self.earliest_deadline) - (wall or now_utc())
            if left.total_seconds() <= settings.deadline_safety_s:
                return "deadline"
        # A backlog keeps a batch busy until it is full; a trickle seals it when it goes
        # quiet, and a steady trickle when it is old.
        if now - self.opened_at >= settings.max_age_s:
            return "age"
        if now - self.last_added >= settings.linger_s:
            return "linger"
        return None


def manifest_record(batch: OpenBatch, packaged: PackagedBatch,
                    public_key_id: str | None) -> bytes:
    """The `ksef.batches.packed` record of a sealed batch, as published: the manifest's
    header and the batch's fields, then the invoices' rows spliced in as they are."""
    data = packaged.manifest.header_dict()
    data.update(
        seller_nip=batch.seller_nip, packed_at=iso(), spool_dir=str(packaged.directory),
        offline_mode=batch.offline_mode, public_key_id=public_key_id,
        earliest_deadline=None if batch.earliest_deadline is None
        else batch.earliest_deadline.isoformat(),
        sealed_topic=batch.sealed_topic, origin_topic=batch.origin_topic,
    )
    return b"".join((orjson.dumps(data)[:-1], b',"invoices":[', batch.rows, b"]}"))

