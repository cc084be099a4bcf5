"""JSON encoding of topic records: orjson out, a small typed decoder in.

Decoding is strict about required fields so a malformed record fails loudly at the
consumer (and becomes a rejection) instead of travelling on half-empty.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, TypeVar, Union

import orjson

T = TypeVar("T")


def encode(record: object) -> bytes:
    return orjson.dumps(record)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(args[0], value)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_convert(item, v) for v in value]
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict(tp, value)
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    hints = _hints(cls)  # type: ignore[arg-type]
    kwargs = {
        f.name: _convert(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name in data
    }
    return cls(**kwargs)


def decode(cls: type[T], raw: bytes | str) -> T:
    """Parse JSON into `cls`; raises ValueError (orjson.JSONDecodeError is one) or TypeError."""
    return from_dict(cls, orjson.loads(raw))
