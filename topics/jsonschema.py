"""Derive the JSON Schema of each topic's records from the dataclasses in `records`.

`schemas/` holds the output (the contract for non-Python producers and consumers);
`python -m topics.jsonschema schemas/` rewrites it and a unit test fails when the
committed files drift from the dataclasses.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, Union

import orjson

from topics import records
from topics.catalog import CATALOG, SUBMITTED, TopicSpec
from topics.headers import (
    HEADER_ATTACHMENTS,
    HEADER_BATCH_ID,
    HEADER_CORRECTION,
    HEADER_SELLER,
    HEADER_SOURCE,
    KEY_MAX_BYTES,
    SOURCE_MAX_CHARS,
)
from topics.packed_rows import ROW_FIELDS
from topics.sealed import FRAMING
from topics.upo_document import FRAMING as UPO_FRAMING

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    float: {"type": "number"},
}


def _type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _type_schema(args[0], defs)
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is list:
        return {"type": "array", "items": _type_schema(typing.get_args(tp)[0], defs)}
    if origin is dict:
        return {"type": "object"}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}
            defs[tp.__name__] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    raise TypeError(f"no JSON Schema mapping for {tp!r}")


def _object_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    required = [
        f.name for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: _type_schema(hints[f.name], defs) for f in fields},
        "required": required,
        "additionalProperties": False,
    }
    doc = (cls.__doc__ or "").strip()
    if doc and not doc.startswith(cls.__name__ + "("):
        schema["description"] = " ".join(doc.split())
    return schema


def _submitted_schema() -> dict[str, Any]:
    return {
        "description": (
            "Raw record, not JSON. Kafka key: invoice id (UTF-8, chosen by the producer, "
            "stable across its retries). Kafka value: the FA(3) invoice XML bytes exactly "
            "as issued (the KSeF hash is over these bytes; never re-encode them). "
            "Optional headers (UTF-8 strings) are described under `headers`; other ksef-* "
            "headers are refused, and all headers together hold at most 64 headers and "
            "16 KiB. Over a bound the invoice is rejected (bad-key, bad-header, too-large)."
        ),
        "type": "object",
        "properties": {
            "key": {
                "type": "string", "minLength": 1, "maxLength": KEY_MAX_BYTES,
                "description": f"invoice id: at most {KEY_MAX_BYTES} bytes of UTF-8, printable (no "
                               "control or format characters)",
            },
            "value": {
                "type": "string", "contentMediaType": "application/xml",
                "description": "invoice XML bytes, UTF-8 without BOM, at most 3,000,000",
            },
            "headers": {
                "type": "object",
                "properties": {
                    HEADER_SELLER: {"type": "string", "pattern": "^[0-9]{10}$"},
                    HEADER_SOURCE: {
                        "type": "string", "maxLength": SOURCE_MAX_CHARS,
                        "description": "billing system: printable UTF-8, no control "
                                       "characters",
                    },
                    HEADER_ATTACHMENTS: {"enum": ["0", "1"]},
                    HEADER_CORRECTION: {
                        "type": "string", "minLength": 44, "maxLength": 44,
                        "description": "SHA-256 (base64) of the rejected original",
                    },
                },
                "additionalProperties": True,
            },
        },
        "required": ["key", "value"],
    }


def topic_schema(spec: TopicSpec) -> dict[str, Any]:
    if spec is SUBMITTED:
        body = _submitted_schema()
        defs: dict[str, Any] = {}
    else:
        defs = {}
        body = _object_schema(spec.record, defs)
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:ksef-pipeline:topic:{spec.name}",
        "title": f"{spec.name} record",
        "x-kafka-key": spec.key,
        **body,
    }
    if spec.record is records.SealedInvoice:
        schema["x-value-format"] = FRAMING
        schema["x-private-part"] = _object_schema(records.SealedPrivate, defs)
    if spec.record is records.UpoDocument:
        schema["x-value-format"] = UPO_FRAMING
    if spec.record is records.PackedBatch:
        schema["x-kafka-headers"] = {
            HEADER_BATCH_ID: "the record's batch_id (UTF-8); absent on records written "
                             "before it"}
        _name_the_rows(schema, defs)
    if defs:
        schema["$defs"] = dict(sorted(defs.items()))
    return schema


def _name_the_rows(schema: dict[str, Any], defs: dict[str, Any]) -> None:
    """An invoice of a manifest is an object or, as the pack stage writes it, a row
    (`topics.packed_rows`) whose ref and origin topics are the record's."""
    row_types = {"invoice_id": "string", "invoice_number": "string", "sha256": "string",
                 "size": "integer", "entry": "string", "ref_partition": "integer",
                 "ref_offset": "integer", "mode": "string", "deadline": ["string", "null"],
                 "origin_partition": ["integer", "null"],
                 "origin_offset": ["integer", "null"]}
    assert tuple(row_types) == ROW_FIELDS
    defs["PackedInvoiceRow"] = {
        "description": "One invoice as a row, positions as named: ref is (sealed_topic, "
                       "ref_partition, ref_offset), origin (origin_topic, origin_partition, "
                       "origin_offset) or none.",
        "type": "array",
        "prefixItems": [{"title": name, "type": kind} for name, kind in row_types.items()],
        "items": False,
        "minItems": len(ROW_FIELDS),
    }
    schema["properties"]["invoices"]["items"] = {
        "anyOf": [{"$ref": "#/$defs/PackedInvoice"}, {"$ref": "#/$defs/PackedInvoiceRow"}]}


def render(spec: TopicSpec) -> bytes:
    return orjson.dumps(topic_schema(spec), option=orjson.OPT_INDENT_2) + b"\n"


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "schemas")
    out.mkdir(parents=True, exist_ok=True)
    for spec in CATALOG:
        (out / f"{spec.name}.json").write_bytes(render(spec))
    print(f"wrote {len(CATALOG)} schemas to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
