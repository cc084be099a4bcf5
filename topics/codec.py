"""JSON encoding of topic records: orjson out, a small typed decoder in.

Decoding is strict about required fields so a malformed record fails loudly at the
consumer (and becomes a rejection) instead of travelling on half-empty.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar, Union

import orjson

from topics import records
from topics.packed_rows import prepare_packed

T = TypeVar("T")


def encode(record: object) -> bytes:
    return orjson.dumps(record)


def _same(value: Any) -> Any:
    return value


def _converter(tp: Any) -> Callable[[Any], Any]:
    """A function turning the JSON value of a field of type `tp` into that type."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _converter(args[0])
        if inner is _same:
            return _same
        return lambda value: None if value is None else inner(value)
    if origin is list:
        item = _converter(typing.get_args(tp)[0])
        if item is _same:
            return _same
        return lambda value: [item(v) for v in value]
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        record = tp
        # a value may come decoded already (a compact form's `prepare`, see decode)
        return lambda value: value if isinstance(value, record) else from_dict(record, value)
    return _same


@cache
def _plan(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """Per record type, once: each field and its converter (decoding is per record, and
    introspecting the type at every record cost more than the JSON parse)."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name]))
                 for f in dataclasses.fields(cls))


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    plan = _plan(cls)  # type: ignore[arg-type]
    return cls(**{name: convert(data[name]) for name, convert in plan if name in data})


def decode(cls: type[T], raw: bytes | str) -> T:
    """Parse JSON into `cls`; raises ValueError (orjson.JSONDecodeError is one) or TypeError.
    A record with a compact form of its own (`_PREPARE`) is unfolded on the way."""
    data = orjson.loads(raw)
    prepare = _PREPARE.get(cls)
    return from_dict(cls, data if prepare is None else prepare(data))


_PREPARE: dict[type, Callable[[Any], Any]] = {records.PackedBatch: prepare_packed}
