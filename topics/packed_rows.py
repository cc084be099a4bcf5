"""The compact form of a `ksef.batches.packed` manifest's invoices: one JSON array each.

An invoice as an object (`records.PackedInvoice`, with its two `KafkaRef` objects) is
~410 bytes of JSON and ~1.4 KB once parsed; a 10,000-invoice manifest was 4 MB on the
topic, in every buffer it passed, and 14 MB in the submit stage for a moment. As a row

    [invoice_id, invoice_number, sha256, size, entry,
     ref_partition, ref_offset, mode, deadline, origin_partition, origin_offset]

with the topics named once in the record (`sealed_topic` for every ref, `origin_topic`
for every origin), it is ~210 bytes and ~0.7 KB parsed. The pack stage writes rows;
records with objects (written before, or by other tools) are still read, and a manifest
may mix both (an invoice whose topics differ from the record's goes as an object).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from topics.records import KafkaRef, PackedBatch, PackedInvoice, origin_text

ROW_FIELDS = ("invoice_id", "invoice_number", "sha256", "size", "entry", "ref_partition",
              "ref_offset", "mode", "deadline", "origin_partition", "origin_offset")
_TYPES: tuple[tuple[type, ...], ...] = (
    (str,), (str,), (str,), (int,), (str,), (int,), (int,), (str,), (str, type(None)),
    (int, type(None)), (int, type(None)))


def invoice_row(inv: PackedInvoice) -> list[Any]:
    """`inv` as a row (its ref's topic and origin's topic are the record's)."""
    origin = inv.origin
    return [inv.invoice_id, inv.invoice_number, inv.sha256, inv.size, inv.entry,
            inv.ref.partition, inv.ref.offset, inv.mode, inv.deadline,
            None if origin is None else origin.partition,
            None if origin is None else origin.offset]


def _checked(row: Any) -> list[Any]:
    if not isinstance(row, list) or len(row) != len(ROW_FIELDS):
        raise ValueError(f"a packed invoice row has {len(ROW_FIELDS)} fields "
                         f"({', '.join(ROW_FIELDS)})")
    for name, value, kinds in zip(ROW_FIELDS, row, _TYPES, strict=True):
        if not isinstance(value, kinds) or (isinstance(value, bool)):
            raise ValueError(f"packed invoice row: {name} must be "
                             f"{' or '.join(k.__name__ for k in kinds)}, got {value!r}")
    if (row[9] is None) != (row[10] is None):
        raise ValueError("packed invoice row: origin_partition and origin_offset go together")
    return row


def invoice_from_row(row: Any, sealed_topic: str, origin_topic: str | None) -> PackedInvoice:
    r = _checked(row)
    origin = None
    if r[9] is not None:
        if origin_topic is None:
            raise ValueError("packed invoice row with an origin, record without origin_topic")
        origin = KafkaRef(origin_topic, r[9], r[10])
    return PackedInvoice(invoice_id=r[0], invoice_number=r[1], sha256=r[2], size=r[3],
                         entry=r[4], ref=KafkaRef(sealed_topic, r[5], r[6]), mode=r[7],
                         deadline=r[8], origin=origin)


def _topics(data: dict[str, Any]) -> tuple[str, str | None]:
    sealed, origin = data.get("sealed_topic"), data.get("origin_topic")
    if not isinstance(sealed, str):
        raise ValueError("packed invoice rows need the record's sealed_topic")
    if origin is not None and not isinstance(origin, str):
        raise ValueError("origin_topic must be a string")
    return sealed, origin


def prepare_packed(data: Any) -> Any:
    """The parsed record with each invoice row turned into a `PackedInvoice` (objects
    are left to the decoder); raises ValueError on a malformed row."""
    invoices = data.get("invoices") if isinstance(data, dict) else None
    if not isinstance(invoices, list) or not any(isinstance(i, list) for i in invoices):
        return data
    sealed, origin = _topics(data)
    data["invoices"] = [invoice_from_row(i, sealed, origin) if isinstance(i, list) else i
                        for i in invoices]
    return data


def packed_entries(data: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
    """(invoice id, SHA-256, origin "topic/partition/offset" or None) of each invoice of
    a parsed record, rows and objects alike; what does not read is skipped."""
    try:
        sealed, origin_topic = _topics(data)
    except ValueError:
        sealed, origin_topic = "", None
    for inv in data.get("invoices") or ():
        entry = packed_entry(inv, sealed, origin_topic)
        if entry is not None:
            yield entry


def packed_entry(inv: Any, sealed_topic: str | None, origin_topic: str | None
                 ) -> tuple[str, str, str | None] | None:
    """What `packed_entries` gives for one parsed invoice (a row needs `sealed_topic`)."""
    if isinstance(inv, list):
        try:
            r = _checked(inv)
        except ValueError:
            return None
        if not sealed_topic:
            return None
        where = None if r[9] is None or origin_topic is None else f"{origin_topic}/{r[9]}/{r[10]}"
        return r[0], r[2], where
    if isinstance(inv, dict):
        inv_id, sha, ref = inv.get("invoice_id"), inv.get("sha256"), inv.get("origin")
        if isinstance(inv_id, str) and isinstance(sha, str):
            return inv_id, sha, origin_text(ref if isinstance(ref, dict) else None)
    return None


def packed_head(raw: bytes | str) -> tuple[PackedBatch, int]:
    """The record with its first invoice only, and how many it lists. Every invoice is
    checked (one at a time, nothing kept): a queued batch waits as its head and its
    bytes, not as thousands of invoices."""
    from topics.codec import from_dict  # the codec unfolds rows with this module

    data = orjson.loads(raw)
    invoices = data.get("invoices") if isinstance(data, dict) else None
    if not isinstance(invoices, list):
        raise ValueError("PackedBatch: invoices must be a list")
    sealed, origin = _topics(data) if any(isinstance(i, list) for i in invoices) else ("", None)
    for inv in invoices:
        if isinstance(inv, list):
            invoice_from_row(inv, sealed, origin)
        else:
            from_dict(PackedInvoice, inv)
    data["invoices"] = invoices[:1]
    return from_dict(PackedBatch, prepare_packed(data)), len(invoices)


def journal_rows(raw: bytes | str) -> list[list[str]]:
    """[invoice id, SHA-256, invoice number] of each invoice of a record checked before
    (`packed_head`): what the `closed` step lists, read without decoding the invoices."""
    rows: list[list[str]] = []
    for inv in orjson.loads(raw)["invoices"]:
        if isinstance(inv, list):
            rows.append([inv[0], inv[2], inv[1]])
        else:
            rows.append([inv["invoice_id"], inv["sha256"], inv["invoice_number"]])
    return rows
