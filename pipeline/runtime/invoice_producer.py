"""Put invoices on `ksef.invoices.submitted`: the Python API billing systems can embed.

The record is the input contract (schemas/ksef.invoices.submitted.json): key = invoice
id, value = the XML bytes exactly as issued, optional `ksef-*` headers. The producer is
idempotent (no duplicates from its own retries) and batches with lz4.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError

from pipeline.runtime.clients import kafka_producer
from pipeline.runtime.settings import KafkaSettings
from topics import CatalogSettings, topic_name
from topics.catalog import SUBMITTED
from topics.headers import HEADER_ATTACHMENTS, HEADER_CORRECTION, HEADER_SELLER, HEADER_SOURCE

MAX_INVOICE_BYTES = 8 * 1024 * 1024


class IngestError(RuntimeError):
    """Kafka refused or lost a record; the message says which invoice and why."""


class InvoiceProducer:
    """Send invoices to the pipeline. Call `flush()` (or use as a context manager)."""

    def __init__(self, kafka: KafkaSettings | None = None,
                 catalog: CatalogSettings | None = None, **overrides: Any) -> None:
        kafka = kafka or KafkaSettings.from_env()
        self.topic = topic_name(SUBMITTED, catalog or CatalogSettings.from_env())
        self._errors: list[str] = []
        self.delivered = 0
        self._producer = kafka_producer(kafka, **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "message.max.bytes": MAX_INVOICE_BYTES + 64 * 1024,
            "queue.buffering.max.kbytes": 256 * 1024,
            **overrides,
        })

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            key = msg.key().decode("utf-8", "replace") if msg.key() else "?"
            self._errors.append(f"invoice {key}: {err.str()}")
        else:
            self.delivered += 1

    def send(self, invoice_id: str, xml: bytes, *, seller_nip: str | None = None,
             source: str | None = None, attachments: bool = False,
             technical_correction_of: str | None = None) -> None:
        headers = {HEADER_SELLER: seller_nip, HEADER_SOURCE: source,
                   HEADER_ATTACHMENTS: "1" if attachments else None,
                   HEADER_CORRECTION: technical_correction_of}
        items = [(k, v.encode()) for k, v in headers.items() if v]
        while True:
            try:
                self._producer.produce(self.topic, key=invoice_id.encode(), value=xml,
                                       headers=items, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.5)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 120.0) -> int:
        """Wait for every record; raise IngestError listing any invoice Kafka did not take."""
        left = self._producer.flush(timeout_s)
        if left:
            self._errors.append(f"{left} invoices still undelivered after {timeout_s:.0f} s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise IngestError("; ".join(errors[:10]) + (" ..." if len(errors) > 10 else ""))
        return self.delivered

    def __enter__(self) -> InvoiceProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


def invoice_files(paths: list[Path]) -> Iterator[Path]:
    """Every .xml under the given files/directories, in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.xml") if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")


def invoice_id(path: Path, scheme: str) -> str:
    """`stem`: the file name without .xml; `path`: the path as given, without .xml."""
    return path.stem if scheme == "stem" else str(path).removesuffix(".xml")


def colliding_ids(files: list[Path], scheme: str) -> dict[str, list[Path]]:
    """Invoice ids more than one file would be sent under.

    The id is the record key the whole pipeline tracks an invoice by; two files under
    one id would reach KSeF as one invoice replacing the other (or be refused as a
    duplicate), so they are refused before anything is sent.
    """
    by_id: dict[str, list[Path]] = {}
    for path in files:
        by_id.setdefault(invoice_id(path, scheme), []).append(path)
    return {key: paths for key, paths in by_id.items() if len(paths) > 1}
