"""What became of each invoice id, followed from the topics: its last packing and its
last final record (an outcome, or a rejection after packing).

The pack stage asks it whether a sealed invoice is a replay (same id and bytes) of one
that is already in a published batch (nothing to do: that batch brings its outcome) or
already has an outcome (that very record is emitted again, no new KSeF session); the
upo stage asks it whether the outcome it is about to emit is already on the topic (a
session settled again after a crash or a takeover), so each invoice gets one outcome
record per submission.

Kept in RocksDB under the worker's data dir, with the offsets read so far, so a restart
reads only what is new; the directory is per Kafka cluster, so a broker started afresh
never meets the ledger of an old one. It is a cache of the topics: delete it and it is
read again from the beginning.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from pipeline.runtime import logs
from pipeline.runtime.clients import kafka_consumer
from pipeline.runtime.recent import Recent
from pipeline.runtime.settings import ROCKSDB_MEMORY, KafkaSettings
from pipeline.runtime.topic_follower import TopicFollower
from topics.headers import HEADER_BATCH_ID
from topics.packed_rows import packed_entries
from topics.records import origin_text

log = logs.get(__name__)

PACKED, OUTCOME, REJECTED = "packed", "outcome", "rejected"
# A duplicate refused by the pack stage's number check (stage "dedupe"), kept apart from
# the final records: it names the `.submitted` record it answered, so a redelivery of
# that record (a rebalance, a takeover) is not refused a second time.
REFUSED = "refused"
DUPLICATE_CHECK = "dedupe"
# Stages whose rejections come after packing: the only ones that end a packed invoice.
AFTER_PACKING = frozenset({"pack", "submit", "upo"})
BATCHES_NOTED = 10_000  # batch ids published here and not read back yet, at most


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    kind: str  # packed | outcome | rejected | refused
    sha256: str
    at_ms: int  # the Kafka timestamp of the record
    batch_id: str | None = None  # packed
    code: int | None = None  # rejected
    ksef_number: str | None = None  # outcome
    record: bytes | None = None  # outcome: the record's value as published
    origin: str | None = None  # packed, refused: "topic/partition/offset" of its `.submitted`


def _encode(entry: LedgerEntry) -> bytes:
    head = orjson.dumps([entry.kind, entry.sha256, entry.at_ms, entry.batch_id, entry.code,
                         entry.ksef_number, entry.origin])
    return head + b"\n" + (entry.record or b"")


def _decode(raw: bytes) -> LedgerEntry:
    head, _, record = raw.partition(b"\n")
    kind, sha, at_ms, batch_id, code, number, origin = orjson.loads(head)
    return LedgerEntry(kind, sha, at_ms, batch_id, code, number, record or None, origin)


class InvoiceLedger:
    """Entries by invoice id, fed by followers of the packed, outcomes and rejected topics."""

    def __init__(self, kafka: KafkaSettings, topics: Mapping[str, tuple[str, int]],
                 directory: Path) -> None:
        self.kafka = kafka
        self.topics = dict(topics)  # kind -> (topic name, partitions)
        self.directory = directory
        self._db: Any = None
        self._opened: asyncio.Future[None] | None = None
        self._batches_noted: Recent[str, bool] = Recent(BATCHES_NOTED)
        self.followers = {kind: TopicFollower(kafka, name, count, self._applier(kind),
                                              start=self._start_offsets(name))
                          for kind, (name, count) in self.topics.items()}

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Open the store (per cluster) and follow every topic until cancelled."""
        await self.opened()
        await asyncio.gather(*(f.run() for f in self.followers.values()))

    def opened(self) -> asyncio.Future[None]:
        if self._opened is None:
            self._opened = asyncio.ensure_future(asyncio.to_thread(self._open))
        return self._opened

    def _open(self) -> None:
        from rocksdict import Options, Rdict

        probe = kafka_consumer(self.kafka, **{"group.id": "ledger-probe", "log_level": 3})
        try:
            cluster = probe.list_topics(timeout=30).cluster_id or "unknown"
        finally:
            probe.close()
        path = self.directory / cluster
        if self.directory.exists():
            for old in self.directory.iterdir():  # ledgers of clusters gone since
                if old != path:
                    shutil.rmtree(old, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.set_write_buffer_size(ROCKSDB_MEMORY["write_buffer_size"])
        options.set_max_write_buffer_number(ROCKSDB_MEMORY["max_write_buffer_number"])
        self._db = Rdict(str(path), options=options)
        log.info("invoice ledger opened", path=str(path))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def caught_up(self) -> None:
        """Every packed, outcome and rejection record published before now is known."""
        await self.opened()
        await asyncio.gather(*(f.caught_up() for f in self.followers.values()))

    # -- reads and writes --------------------------------------------------------------

    def packed(self, invoice_id: str) -> LedgerEntry | None:
        return self._get(b"p\0" + invoice_id.encode())

    def final(self, invoice_id: str) -> LedgerEntry | None:
        return self._get(b"f\0" + invoice_id.encode())

    def refused(self, invoice_id: str) -> LedgerEntry | None:
        """The last duplicate refusal of this id by the pack stage (see REFUSED)."""
        return self._get(b"d\0" + invoice_id.encode())

    def _get(self, key: bytes) -> LedgerEntry | None:
        raw = None if self._db is None else self._db.get(key)
        return None if raw is None else _decode(raw)

    def answered(self, invoice_id: str) -> str | None:
        """The `.submitted` origin whose replay this worker last answered with the
        outcome again (a redelivery of that replay must not add another record)."""
        raw = None if self._db is None else self._db.get(b"r\0" + invoice_id.encode())
        return None if raw is None else bytes(raw).decode()

    def note_answered(self, invoice_id: str, origin: str) -> None:
        if self._db is not None:
            self._db[b"r\0" + invoice_id.encode()] = origin.encode()

    def note(self, invoice_id: str, entry: LedgerEntry) -> None:
        """Record an entry (a later one of the same slot replaces an earlier one)."""
        if self._db is None:
            return
        slot = {PACKED: b"p\0", REFUSED: b"d\0"}.get(entry.kind, b"f\0")
        key = slot + invoice_id.encode()
        old = self._get(key)
        if old is None or old.at_ms <= entry.at_ms:
            self._db[key] = _encode(entry)

    def note_batch(self, batch_id: str, packed: Iterable[tuple[str, LedgerEntry]]) -> None:
        """The packing of a batch this worker published: read back from the topic, its
        manifest is then not parsed again (~2 KB of objects per invoice, for a moment,
        the largest allocation of a 10,000-invoice run's peak)."""
        for invoice_id, entry in packed:
            self.note(invoice_id, entry)
        self._batches_noted[batch_id] = True

    def _noted_here(self, headers: Any) -> bool:
        for name, value in headers or ():
            if name == HEADER_BATCH_ID and value is not None:
                return value.decode("utf-8", "replace") in self._batches_noted
        return False

    def _start_offsets(self, topic: str) -> Any:
        def start() -> dict[int, int]:
            if self._db is None:
                return {}
            prefix = f"o\0{topic}\0".encode()
            out: dict[int, int] = {}
            for key, value in self._db.items(from_key=prefix):
                if not key.startswith(prefix):
                    break
                out[int(key[len(prefix):])] = int(value)
            return out
        return start

    def _applier(self, kind: str) -> Any:
        def apply(record: ConsumerRecord) -> None:  # type: ignore[type-arg]
            if self._db is None:
                return
            if record.value is not None and record.key is not None and not (
                    kind == PACKED and self._noted_here(record.headers)):
                entry = entries(kind, record.value, record.timestamp)
                for invoice_id, item in entry:
                    self.note(invoice_id, item)
            self._db[f"o\0{record.topic}\0{record.partition}".encode()] = \
                str(record.offset + 1).encode()
        return apply


def entries(kind: str, value: bytes, at_ms: int) -> list[tuple[str, LedgerEntry]]:
    """The ledger entries one record of a followed topic makes (none for foreign junk)."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(data, dict):
        return []
    if kind == PACKED:
        batch_id = data.get("batch_id")
        return [(invoice_id, LedgerEntry(PACKED, sha, at_ms, batch_id=batch_id, origin=origin))
                for invoice_id, sha, origin in packed_entries(data)]
    invoice_id, sha = data.get("invoice_id"), data.get("sha256")
    if not isinstance(invoice_id, str) or not isinstance(sha, str):
        return []
    if kind == OUTCOME:
        return [(invoice_id, LedgerEntry(OUTCOME, sha, at_ms, ksef_number=data.get(
            "ksef_number"), record=value))]
    if kind == REJECTED and data.get("stage") in AFTER_PACKING:
        return [(invoice_id, LedgerEntry(REJECTED, sha, at_ms, code=data.get("code")))]
    if kind == REJECTED and data.get("stage") == DUPLICATE_CHECK:
        return [(invoice_id, LedgerEntry(REFUSED, sha, at_ms, code=data.get("code"),
                                         origin=origin_text(data.get("origin"))))]
    return []


def replay_verdict(packed: LedgerEntry | None, final: LedgerEntry | None, sha256: str,
                   origin: str | None = None, answered: str | None = None) -> str:
    """What the pack stage does with a sealed invoice, given what its id already went
    through and the `.submitted` record it came from (`origin`):

    - `outcome-again`: a producer's replay (a new submitted record) of these very bytes,
      which already have an outcome: emit that record again;
    - `on-its-way`: the submission a published batch carries (delivered again after a
      crash or rebalance, or sealed twice), or a replay already answered: nothing to
      do, its record comes (or came) from that batch;
    - `pack`: new, changed, or refused after packing: send it.
    """
    same = packed is not None and packed.sha256 == sha256
    redelivered = same and origin is not None and packed is not None and (
        packed.origin == origin or answered == origin)
    if final is not None and final.kind == OUTCOME and final.sha256 == sha256:
        return "on-its-way" if redelivered else "outcome-again"
    if same and packed is not None and (final is None or final.at_ms < packed.at_ms):
        return "on-its-way"
    return "pack"


def already_final(packed: LedgerEntry | None, final: LedgerEntry | None, sha256: str, *,
                  ksef_number: str | None = None, code: int | None = None) -> bool:
    """Whether the outcome (`ksef_number`) or rejection (`code`) the upo stage is about to
    emit is on its topic already for this submission (a session settled a second time)."""
    if final is None or final.sha256 != sha256:
        return False
    if ksef_number is not None:
        return final.kind == OUTCOME and final.ksef_number == ksef_number
    if packed is not None and final.at_ms < packed.at_ms:
        return False  # the rejection of an earlier submission of the same bytes
    return final.kind == REJECTED and final.code == code


_ledger: InvoiceLedger | None = None


def invoice_ledger() -> InvoiceLedger:
    """This worker's ledger (created and registered as an app task on first call)."""
    global _ledger
    if _ledger is None:
        from pipeline.runtime.app import app, catalog_settings, kafka_settings, worker_settings
        from topics import topic_name
        from topics.catalog import OUTCOMES
        from topics.catalog import PACKED as PACKED_TOPIC
        from topics.catalog import REJECTED as REJECTED_TOPIC

        _ledger = InvoiceLedger(kafka_settings, {
            kind: (topic_name(spec, catalog_settings), spec.partition_count(catalog_settings))
            for kind, spec in ((PACKED, PACKED_TOPIC), (OUTCOME, OUTCOMES),
                               (REJECTED, REJECTED_TOPIC))},
            Path(worker_settings.data_dir) / "invoice-ledger")
        app.task(_ledger.run)
    return _ledger
