"""`schemas/` and the record dataclasses in `topics/` must say the same thing."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Union

import jsonschema
import orjson
import pytest

from topics import CATALOG, TopicSpec
from topics.catalog import SUBMITTED
from topics.codec import decode, encode
from topics.jsonschema import render

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
RECORD_TOPICS = [s for s in CATALOG if s is not SUBMITTED]


def _example(tp: Any, depth: int = 0, null: bool = False) -> Any:
    """A value of type `tp`; `null=True` picks None for optionals (the sparse variant)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if null else _example(args[0], depth, null)
    if origin is list:
        return [_example(typing.get_args(tp)[0], depth + 1, null)]
    if origin is dict:
        return {"line": 3, "path": "/Faktura/Fa/P_2"}
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: _example(hints[f.name], depth + 1, null)
                     for f in dataclasses.fields(tp)})
    return {str: "text", int: 7, bool: True, float: 1.5}[tp]


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
def test_committed_schema_matches_records(spec: TopicSpec) -> None:
    path = SCHEMAS / f"{spec.name}.json"
    assert path.read_bytes() == render(spec), (
        f"{path} is stale: run `python -m topics.jsonschema schemas`")


@pytest.mark.parametrize("null", [False, True], ids=["full", "sparse"])
@pytest.mark.parametrize("spec", RECORD_TOPICS, ids=lambda s: s.name)
def test_records_validate_and_round_trip(spec: TopicSpec, null: bool) -> None:
    schema = orjson.loads((SCHEMAS / f"{spec.name}.json").read_bytes())
    record = _example(spec.record, null=null)
    raw = encode(record)
    jsonschema.validate(orjson.loads(raw), schema)
    assert decode(spec.record, raw) == record


@pytest.mark.parametrize("spec", RECORD_TOPICS, ids=lambda s: s.name)
def test_schema_rejects_missing_required_and_unknown_fields(spec: TopicSpec) -> None:
    schema = orjson.loads((SCHEMAS / f"{spec.name}.json").read_bytes())
    doc = orjson.loads(encode(_example(spec.record)))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "unexpected": 1}, schema)
    first_required = schema["required"][0]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in doc.items() if k != first_required}, schema)


def test_submitted_contract_describes_headers() -> None:
    schema = orjson.loads((SCHEMAS / f"{SUBMITTED.name}.json").read_bytes())
    headers = schema["properties"]["headers"]["properties"]
    assert set(headers) >= {"ksef-seller-nip", "ksef-source", "ksef-attachments",
                            "ksef-technical-correction-of"}
    jsonschema.validate({"key": "inv-1", "value": "<Faktura/>",
                         "headers": {"ksef-seller-nip": "5265877635"}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"key": "inv-1", "value": "x", "headers": {"ksef-seller-nip": "12"}},
                            schema)
