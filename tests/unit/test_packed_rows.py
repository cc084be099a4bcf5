"""A manifest's invoices as rows (what pack writes) or objects (records written before)."""

from __future__ import annotations

import dataclasses

import jsonschema
import orjson
import pytest

from topics.catalog import PACKED
from topics.codec import decode, encode
from topics.jsonschema import topic_schema
from topics.packed_rows import invoice_row, journal_rows, packed_entries, packed_head
from topics.records import KafkaRef, PackagePart, PackedBatch, PackedInvoice

SEALED, SUBMITTED = "p.ksef.invoices.sealed", "p.ksef.invoices.submitted"


def _invoice(n: int, origin: bool = True) -> PackedInvoice:
    return PackedInvoice(invoice_id=f"id-{n}", invoice_number=f"FV/{n}", sha256="h" * 43 + "=",
                         size=1000 + n, entry=f"{n:05d}-x.xml", ref=KafkaRef(SEALED, n % 3, n),
                         mode="online", deadline=None if n % 2 else "2026-12-07",
                         origin=KafkaRef(SUBMITTED, n % 4, 500 + n) if origin else None)


def _batch(invoices: list[PackedInvoice]) -> PackedBatch:
    return PackedBatch(batch_id="b", seller_nip="5260250274", archive_format="zip",
                       package_sha256="s", package_size=1,
                       parts=[PackagePart(1, 1, "p", 0, 1)], wrapped_key_b64="k", iv_b64="i",
                       deflate_level=3, zlib_version="1", invoices=invoices, packed_at="t",
                       spool_dir="d", offline_mode=False, sealed_topic=SEALED,
                       origin_topic=SUBMITTED)


def _as_rows(batch: PackedBatch, keep_objects: tuple[int, ...] = ()) -> bytes:
    doc = orjson.loads(encode(batch))
    doc["invoices"] = [doc["invoices"][n] if n in keep_objects else invoice_row(inv)
                       for n, inv in enumerate(batch.invoices)]
    return orjson.dumps(doc)


def test_rows_objects_and_a_mix_decode_to_the_same_record() -> None:
    batch = _batch([_invoice(n, origin=n != 4) for n in range(6)])
    rows = _as_rows(batch)
    assert len(rows) < 0.7 * len(encode(batch))
    assert decode(PackedBatch, rows) == batch
    assert decode(PackedBatch, encode(batch)) == batch
    assert decode(PackedBatch, _as_rows(batch, keep_objects=(1, 4))) == batch
    schema = topic_schema(PACKED)
    for raw in (rows, encode(batch), _as_rows(batch, keep_objects=(2,))):
        jsonschema.validate(orjson.loads(raw), schema)


def test_the_ledger_reads_the_same_entries_from_rows_and_objects() -> None:
    batch = _batch([_invoice(n, origin=n != 1) for n in range(4)])
    expected = [(i.invoice_id, i.sha256, None if i.origin is None else
                 f"{SUBMITTED}/{i.origin.partition}/{i.origin.offset}") for i in batch.invoices]
    assert list(packed_entries(orjson.loads(_as_rows(batch)))) == expected
    assert list(packed_entries(orjson.loads(encode(batch)))) == expected


@pytest.mark.parametrize(("bad", "schema_sees_it"), [
    (lambda row: row[:-1], True),  # a field short
    (lambda row: [*row[:3], "big", *row[4:]], True),  # size not a number
    (lambda row: [*row[:9], 3, None], False),  # half an origin (the decoder's own rule)
    (lambda row: [*row[:3], 1.5, *row[4:]], True),  # a size that is not whole
])
def test_a_malformed_row_fails_the_decode(bad: object, schema_sees_it: bool) -> None:
    batch = _batch([_invoice(1)])
    doc = orjson.loads(_as_rows(batch))
    doc["invoices"][0] = bad(doc["invoices"][0])  # type: ignore[operator]
    with pytest.raises(ValueError, match="row"):
        decode(PackedBatch, orjson.dumps(doc))
    if schema_sees_it:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, topic_schema(PACKED))


def test_rows_need_the_record_to_name_their_topic() -> None:
    doc = orjson.loads(_as_rows(_batch([_invoice(1)])))
    del doc["sealed_topic"]
    with pytest.raises(ValueError, match="sealed_topic"):
        decode(PackedBatch, orjson.dumps(doc))
    no_origin = orjson.loads(_as_rows(dataclasses.replace(_batch([_invoice(1)]))))
    no_origin["origin_topic"] = None
    with pytest.raises(ValueError, match="origin_topic"):
        decode(PackedBatch, orjson.dumps(no_origin))


def test_the_head_keeps_one_invoice_after_checking_them_all() -> None:
    batch = _batch([_invoice(n) for n in range(5)])
    for raw in (_as_rows(batch), encode(batch), _as_rows(batch, keep_objects=(0, 3))):
        head, count = packed_head(raw)
        assert count == 5
        assert head == dataclasses.replace(batch, invoices=batch.invoices[:1])
        assert journal_rows(raw) == [[i.invoice_id, i.sha256, i.invoice_number]
                                     for i in batch.invoices]
    doc = orjson.loads(_as_rows(batch))
    doc["invoices"][4] = doc["invoices"][4][:5]  # the last one torn: the head still fails
    with pytest.raises(ValueError, match="row"):
        packed_head(orjson.dumps(doc))
    doc = orjson.loads(encode(batch))
    del doc["invoices"][2]["sha256"]
    with pytest.raises((ValueError, TypeError)):
        packed_head(orjson.dumps(doc))
