"""The topic catalog: every topic the pipeline uses, its record type and its configuration.

Retention follows the security rule: topics holding invoice plaintext (before the seal
stage) keep days, everything after seal keeps longer than any legal deadline plus an
outage. Partition count, replication and min ISR scale by `CatalogSettings` for
production clusters (replication follows the cluster unless set: 3 replicas and
min.insync.replicas 2 on 3 or more brokers); the catalog itself stays one declaration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from topics import records

DAY_MS = 24 * 3600 * 1000
INVOICE_MESSAGE_BYTES = 8 * 1024 * 1024  # junk up to 8 MiB gets a reasoned rejection
DEFAULT_MESSAGE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TopicSpec:
    name: str
    record: type
    key: str
    description: str
    cleanup_policy: str = "delete"
    retention_days: int | None = None  # None = keep forever
    max_message_bytes: int = DEFAULT_MESSAGE_BYTES
    plaintext: bool = False
    partitions: int | None = None  # None = CatalogSettings.partitions
    compression: str = "producer"  # producers pick lz4/zstd; no broker recompression

    def configs(self, settings: CatalogSettings) -> dict[str, str]:
        retention = -1 if self.retention_days is None else self.retention_days * DAY_MS
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(retention),
            "max.message.bytes": str(self.max_message_bytes),
            "min.insync.replicas": str(settings.min_isr),
            "compression.type": self.compression,
        }

    def partition_count(self, settings: CatalogSettings) -> int:
        return self.partitions if self.partitions is not None else settings.partitions


def _count(name: str, default: str) -> int | None:
    """An env count; `auto` (or empty) is None: follow the cluster."""
    value = os.environ.get(name, default).strip().lower()
    if value in ("", "auto"):
        return None
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: a positive number or 'auto' expected") from None
    if count < 1:
        raise ValueError(f"{name}={value!r}: a positive number or 'auto' expected")
    return count


def default_min_insync_replicas(replication_factor: int) -> int:
    """2 when there are 3 or more replicas (one broker may fail, writes stay safe), else 1."""
    return 2 if replication_factor >= 3 else 1


@dataclass(frozen=True)
class CatalogSettings:
    partitions: int = 8
    # None ("auto"): follow the cluster, min(3, brokers); see `for_cluster`
    replication_factor: int | None = None
    # None ("auto"): 2 with 3 or more replicas, else 1
    min_insync_replicas: int | None = None
    prefix: str = ""

    @classmethod
    def from_env(cls) -> CatalogSettings:
        """KSEF_TOPIC_PARTITIONS / _REPLICATION / _MIN_ISR / KSEF_TOPIC_PREFIX."""
        return cls(
            partitions=int(os.environ.get("KSEF_TOPIC_PARTITIONS", "8")),
            replication_factor=_count("KSEF_TOPIC_REPLICATION", "auto"),
            min_insync_replicas=_count("KSEF_TOPIC_MIN_ISR", "auto"),
            prefix=os.environ.get("KSEF_TOPIC_PREFIX", ""),
        )

    def for_cluster(self, brokers: int) -> CatalogSettings:
        """These settings with `auto` replication resolved for a cluster of `brokers`."""
        replication = self.replication_factor or min(3, max(1, brokers))
        return replace(self, replication_factor=replication,
                       min_insync_replicas=self.min_insync_replicas
                       or default_min_insync_replicas(replication))

    @property
    def min_isr(self) -> int:
        """min.insync.replicas of resolved settings (see `for_cluster`)."""
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        if self.replication_factor is None:
            raise ValueError("replication follows the cluster: resolve the settings with "
                             "for_cluster(brokers) first")
        return default_min_insync_replicas(self.replication_factor)


SUBMITTED = TopicSpec(
    "ksef.invoices.submitted", records.Envelope,
    key="invoice id (producer-chosen, stable across retries)",
    description="invoice XML bytes exactly as issued; optional ksef-* headers",
    retention_days=7, max_message_bytes=INVOICE_MESSAGE_BYTES, plaintext=True,
)
RELEASES = TopicSpec(
    "ksef.dedupe.releases", records.DedupeRelease,
    key="seller NIP (partitioned like ksef.invoices.sealed, whose pack owns the numbers)",
    description="internal: invoices refused after the duplicate check give their number back",
    retention_days=7,
)
SEALED = TopicSpec(
    "ksef.invoices.sealed", records.SealedInvoice, key="seller NIP",
    description="binary record (topics.sealed): metadata (issuing mode, deadline, QR links) "
                "and the deflated invoice encrypted with AES-256-GCM",
    retention_days=400, max_message_bytes=INVOICE_MESSAGE_BYTES,
)
CORRECTIONS = TopicSpec(
    "ksef.invoices.corrections", records.SealedInvoice, key="seller NIP",
    description="technical corrections that passed the duplicate check (sealed records, "
                "as on ksef.invoices.sealed), for the interactive lane",
    retention_days=400, max_message_bytes=INVOICE_MESSAGE_BYTES,
)
REJECTED = TopicSpec(
    "ksef.invoices.rejected", records.Rejection, key="invoice id",
    description="reasoned rejection from any stage (code, reason, message)",
    retention_days=400,
)
PACKED = TopicSpec(
    "ksef.batches.packed", records.PackedBatch, key="seller NIP",
    description="batch package manifest: parts, wrapped key, invoices by Kafka offset",
    retention_days=400, max_message_bytes=INVOICE_MESSAGE_BYTES,
)
SESSIONS = TopicSpec(
    "ksef.sessions", records.SessionStep, key="batch id",
    max_message_bytes=INVOICE_MESSAGE_BYTES,
    description="every step of every KSeF session (resume point after a crash)",
    retention_days=400,
)
OUTCOMES = TopicSpec(
    "ksef.invoices.outcomes", records.InvoiceOutcome, key="invoice id",
    description="invoice accepted by KSeF: KSeF number, acquisition date, UPO",
    cleanup_policy="compact",
)
UPO = TopicSpec(
    "ksef.upo", records.UpoDocument, key="session reference/UPO reference",
    description="session UPO documents", cleanup_policy="compact",
    max_message_bytes=INVOICE_MESSAGE_BYTES,
)
ANNOUNCEMENTS = TopicSpec(
    "ksef.announcements", records.Announcement, key="message id",
    description="Latarnia / operator outage announcements, latest version wins",
    cleanup_policy="compact", partitions=1,
)
MODE = TopicSpec(
    "ksef.mode", records.ModeState, key="'ksef'", cleanup_policy="compact",
    description="current KSeF state and outage window history", partitions=1,
)
DEADLINES = TopicSpec(
    "ksef.deadlines", records.DeadlineRecord, key="invoice id", cleanup_policy="compact",
    description="legal submission deadline of every pending invoice (tombstone when done)",
)
ALERTS = TopicSpec(
    "ksef.alerts", records.Alert, key="alert id", retention_days=90,
    description="invoices at risk, missed deadlines, Latarnia unreachable, self-observed outage",
)
CONTROL = TopicSpec(
    "ksef.control", records.HeldRelease, key="release:<seller NIP>", cleanup_policy="compact",
    description="operator requests to the stages: reject a context's credential-held invoices",
    partitions=1,
)

CATALOG: tuple[TopicSpec, ...] = (
    SUBMITTED, SEALED, RELEASES, CORRECTIONS, REJECTED, PACKED, SESSIONS, OUTCOMES, UPO,
    ANNOUNCEMENTS, MODE, DEADLINES, ALERTS, CONTROL,
)
BY_NAME: dict[str, TopicSpec] = {t.name: t for t in CATALOG}


# What a one-record batch adds to its key and value on the wire (batch header 61 bytes,
# record framing up to ~20): kept generous, so a record passing `check_record_size` is
# never one the broker refuses for its size.
RECORD_OVERHEAD_BYTES = 128


class RecordTooLarge(ValueError):
    """A record larger than its topic's max.message.bytes: the broker would refuse it for
    good, so it is never sent (a retry or restart cannot help)."""

    def __init__(self, spec: TopicSpec, size: int) -> None:
        self.spec = spec
        self.size = size
        self.limit = spec.max_message_bytes
        super().__init__(f"a record of {size:,} bytes does not fit {spec.name} "
                         f"(max.message.bytes {spec.max_message_bytes:,})")


def check_record_size(spec: TopicSpec, key: bytes | None, value: bytes | None,
                      headers_bytes: int = 0) -> None:
    """Raise `RecordTooLarge` when key + value + headers cannot fit one record of `spec`."""
    size = len(key or b"") + len(value or b"") + headers_bytes + RECORD_OVERHEAD_BYTES
    if size > spec.max_message_bytes:
        raise RecordTooLarge(spec, size)


def topic_name(spec: TopicSpec, settings: CatalogSettings | None = None) -> str:
    """The name on the cluster (an optional prefix lets several pipelines share one)."""
    prefix = (settings or CatalogSettings.from_env()).prefix
    return prefix + spec.name
