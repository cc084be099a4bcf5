"""The demo's workload: sample invoices in, a live per-stage view, every invoice accounted for.

Kept apart from the process orchestration in `pipeline.demo.run` so the accounting (which
invoice ids came out where) is plain code the tests and the e2e benchmark reuse.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from pipeline.demo.samples import bad_invoices, make_invoice, seller_nips
from pipeline.runtime.clients import kafka_consumer
from pipeline.runtime.invoice_producer import InvoiceProducer
from pipeline.runtime.settings import KafkaSettings
from topics import CatalogSettings, topic_name
from topics.catalog import OUTCOMES, PACKED, REJECTED, SEALED, SUBMITTED, TopicSpec
from topics.codec import decode
from topics.records import InvoiceOutcome, Rejection

# Defects `--bad` mixes in: every reason the checks give except those that depend on
# settings (attachments) or need megabytes (too-large), and a duplicate invoice number.
BAD_SKIPPED = frozenset({"too-large", "attachments-not-allowed"})


def generate(count: int, sellers: list[str], today: dt.date, run: str, bad: int = 0
             ) -> list[tuple[str, str, bytes]]:
    """(invoice id, seller NIP, XML) for `count` invoices spread over `sellers`, then
    `bad` defective ones (each must end with a rejection)."""
    profiles = ("typical", "typical", "small", "typical")
    out = []
    for i in range(count):
        nip = sellers[i % len(sellers)]
        number = f"FV/{run}/{i + 1:06d}"
        xml = make_invoice(seller_nip=nip, number=number, issue_date=today,
                           profile=profiles[i % len(profiles)], seed=i)
        out.append((f"{run}-{i + 1:06d}", nip, xml))
    defects = [data for reason, data in bad_invoices(today) if reason not in BAD_SKIPPED]
    for j in range(bad):
        invoice_id = f"{run}-bad-{j + 1:04d}"
        kind = j % (len(defects) + 1)
        if kind == 0 and out:
            _, nip, xml = out[0]  # the same seller and number again: a duplicate
            out.append((invoice_id, nip, xml))
        else:
            out.append((invoice_id, sellers[j % len(sellers)], defects[kind - 1]))
    return out


@dataclass
class Ledger:
    """Distinct invoice ids seen on the outcome and rejection topics."""

    expected: set[str]
    accepted: dict[str, str] = field(default_factory=dict)  # invoice id -> KSeF number
    rejected: dict[str, str] = field(default_factory=dict)  # invoice id -> reason
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def settled(self) -> int:
        with self.lock:
            return len(self.expected & (self.accepted.keys() | self.rejected.keys()))

    def done(self) -> bool:
        return self.settled >= len(self.expected)

    def rejection_reasons(self) -> dict[str, int]:
        """reason -> invoices of this run rejected (and never accepted) for it."""
        with self.lock:
            counts: dict[str, int] = {}
            for invoice_id, reason in self.rejected.items():
                if invoice_id in self.expected and invoice_id not in self.accepted:
                    counts[reason] = counts.get(reason, 0) + 1
            return counts


def read_from_start(kafka: KafkaSettings, names: list[str]) -> Any:
    """A consumer of every partition of `names` from its first record, in no group.

    The demo's and chaos's readers only watch; as group members they depended on the
    group coordinator. After a broker restart in `ops/chaos` the ledger reader's group
    was seen EMPTY while the thread went on polling: it never rejoined, read nothing
    more, and the run waited for invoices the pipeline had long settled."""
    consumer = kafka_consumer(kafka, **{
        "group.id": f"demo-reader-{uuid.uuid4().hex}",  # required; never joined or committed
        "enable.auto.commit": False, "log_level": 3})
    listed = consumer.list_topics(timeout=30).topics
    consumer.assign([TopicPartition(name, partition, OFFSET_BEGINNING) for name in names
                     for partition in sorted(listed[name].partitions)])
    return consumer


class LedgerReader(threading.Thread):
    """Follows outcomes and rejections from the beginning into a Ledger."""

    def __init__(self, kafka: KafkaSettings, catalog: CatalogSettings, ledger: Ledger) -> None:
        super().__init__(daemon=True, name="ledger")
        self.ledger = ledger
        self._halt = threading.Event()
        self._names = {topic_name(OUTCOMES, catalog): OUTCOMES,
                       topic_name(REJECTED, catalog): REJECTED}
        self._consumer = read_from_start(kafka, list(self._names))

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                for msg in self._consumer.consume(500, 0.5):
                    if msg.error() or msg.value() is None:
                        continue
                    self._record(self._names[msg.topic()], msg.value())
        finally:
            self._consumer.close()

    def _record(self, spec: TopicSpec, value: bytes) -> None:
        try:
            if spec is OUTCOMES:
                out = decode(InvoiceOutcome, value)
                with self.ledger.lock:
                    self.ledger.accepted[out.invoice_id] = out.ksef_number
            else:
                rej = decode(Rejection, value)
                with self.ledger.lock:
                    self.ledger.rejected.setdefault(rej.invoice_id, rej.reason)
        except (ValueError, TypeError):
            pass

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class StageCounter:
    """Records per stage topic from watermarks: cheap enough to poll twice a second."""

    STAGES = (("submitted", SUBMITTED), ("sealed", SEALED),
              ("batches", PACKED), ("outcomes", OUTCOMES), ("rejected", REJECTED))

    def __init__(self, kafka: KafkaSettings, catalog: CatalogSettings) -> None:
        self._consumer = kafka_consumer(kafka, **{"group.id": "demo-counter",
                                                      "log_level": 3})
        self._catalog = catalog
        self._partitions: dict[str, list[int]] = {}

    def counts(self) -> dict[str, int]:
        out = {}
        for label, spec in self.STAGES:
            name = topic_name(spec, self._catalog)
            if name not in self._partitions:
                meta = self._consumer.list_topics(name, timeout=10).topics[name]
                self._partitions[name] = sorted(meta.partitions)
            total = 0
            for p in self._partitions[name]:
                low, high = self._consumer.get_watermark_offsets(TopicPartition(name, p),
                                                                 timeout=10)
                total += high - low
            out[label] = total
        return out

    def close(self) -> None:
        self._consumer.close()


def ingest(items: list[tuple[str, str, bytes]], kafka: KafkaSettings,
           catalog: CatalogSettings, on_sent: Callable[[int], None] | None = None) -> float:
    """Send every invoice; seconds it took."""
    started = time.monotonic()
    producer = InvoiceProducer(kafka, catalog)
    for n, (invoice_id, _nip, xml) in enumerate(items, start=1):
        producer.send(invoice_id, xml, source="demo")
        if on_sent and n % 500 == 0:
            on_sent(n)
    producer.flush()
    return time.monotonic() - started


__all__ = ["Ledger", "LedgerReader", "StageCounter", "generate", "ingest", "seller_nips"]


class DeadlineView(threading.Thread):
    """Latest `ksef.deadlines` record per invoice (tombstones remove), for narration."""

    def __init__(self, kafka: KafkaSettings, catalog: CatalogSettings) -> None:
        super().__init__(daemon=True, name="deadlines")
        from topics.catalog import DEADLINES

        self.latest: dict[str, tuple[str, str | None]] = {}
        self.lock = threading.Lock()
        self._halt = threading.Event()
        self._consumer = read_from_start(kafka, [topic_name(DEADLINES, catalog)])

    def run(self) -> None:
        from topics.records import DeadlineRecord

        try:
            while not self._halt.is_set():
                for msg in self._consumer.consume(1000, 0.5):
                    if msg.error():
                        continue
                    key = (msg.key() or b"").decode()
                    with self.lock:
                        if msg.value() is None:
                            self.latest.pop(key, None)
                            continue
                        try:
                            rec = decode(DeadlineRecord, msg.value())
                        except (ValueError, TypeError):
                            continue
                        self.latest[key] = (rec.status, rec.deadline)
        finally:
            self._consumer.close()

    def summary(self) -> dict[tuple[str, str | None], int]:
        with self.lock:
            out: dict[tuple[str, str | None], int] = {}
            for value in self.latest.values():
                out[value] = out.get(value, 0) + 1
            return out

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
