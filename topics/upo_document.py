"""The record of `ksef.upo`: the UPO's exact bytes behind a small metadata header.

A UPO is KSeF's signed receipt. It crossed the topic as text inside a JSON string
before: decoded, escaped and re-encoded, and orjson reserved room for the worst-case
escape of the whole document, ten times its size (16.6 MB for a 3,333-invoice UPO of
1.7 MB, the largest allocation at a 10,000-invoice run's peak). A record is now

    offset 0   4 bytes   magic b"KSU1"
    offset 4   4 bytes   M, the metadata length (unsigned, big-endian)
    offset 8   M bytes   metadata: UTF-8 JSON object, `records.UpoDocument`
    8+M        rest      the UPO XML exactly as KSeF returned it, as a raw DEFLATE
                         stream (RFC 1951) when the metadata says compression "deflate"

so a consumer in any language inflates the rest (zlib with negative window bits, Java's
`Inflater(true)`, Go's `compress/flate`) and has the receipt byte for byte, signature
intact. Deflated, a 3,333-invoice UPO of 1.7 MB is ~0.2 MB on the topic and in the
producer's and the broker's buffers. Records written before are still read: those with
the UPO as it came (no `compression`), and those of the former JSON format (one object
with `upo_xml`), told apart by the first byte (`{` is never the magic's).
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

import orjson

from topics.codec import from_dict
from topics.records import UpoDocument

# What `schemas/` says of the value (its JSON Schema describes the metadata part).
FRAMING = (
    "Binary value, not JSON: b'KSU1' | uint32 big-endian M | M bytes of UTF-8 JSON metadata "
    "(this schema) | the UPO XML exactly as KSeF returned it, as a raw DEFLATE stream "
    "(RFC 1951) when compression is 'deflate'. A value starting with '{' is a record of "
    "the former JSON format (these fields plus upo_xml, the XML as text)."
)
MAGIC = b"KSU1"
_LENGTH = struct.Struct(">I")
_HEAD = 4 + _LENGTH.size
NONE, DEFLATE = "none", "deflate"
DEFLATE_LEVEL = 6
MAX_UPO_BYTES = 64 * 1024 * 1024  # a 10,000-invoice UPO page is ~5 MB


class UpoRecordError(ValueError):
    """Not a `ksef.upo` record of either format."""


def frame_upo(meta: UpoDocument, xml: bytes) -> bytes:
    """The record's bytes: the UPO deflated behind the metadata, no decoding."""
    meta_json = orjson.dumps(dataclasses.replace(meta, compression=DEFLATE))
    body = zlib.compress(xml, DEFLATE_LEVEL, wbits=-15)
    return b"".join((MAGIC, _LENGTH.pack(len(meta_json)), meta_json, body))


def _body(meta: UpoDocument, rest: bytes) -> bytes:
    if meta.compression == NONE:
        return rest
    if meta.compression != DEFLATE:
        raise UpoRecordError(f"ksef.upo record compressed as {meta.compression!r}")
    inflater = zlib.decompressobj(wbits=-15)
    try:
        xml = inflater.decompress(rest, MAX_UPO_BYTES)
    except zlib.error as exc:
        raise UpoRecordError(f"ksef.upo record does not inflate: {exc}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise UpoRecordError("ksef.upo record is truncated or inflates past "
                             f"{MAX_UPO_BYTES} bytes")
    return xml


def read_upo(value: bytes) -> tuple[UpoDocument, bytes]:
    """(metadata, the UPO's bytes) of a record of either format."""
    try:
        if value[:1] == b"{":
            legacy = orjson.loads(value)
            xml = legacy.pop("upo_xml")
            if not isinstance(xml, str):
                raise UpoRecordError("former ksef.upo record: upo_xml is not text")
            return from_dict(UpoDocument, legacy), xml.encode("utf-8")
        if len(value) < _HEAD or value[:4] != MAGIC:
            raise UpoRecordError("not a ksef.upo record (no KSU1 magic)")
        (length,) = _LENGTH.unpack_from(value, 4)
        end = _HEAD + length
        if end > len(value):
            raise UpoRecordError("ksef.upo record is truncated")
        meta = from_dict(UpoDocument, orjson.loads(value[_HEAD:end]))
    except UpoRecordError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise UpoRecordError(f"ksef.upo metadata does not decode: {exc}") from None
    return meta, _body(meta, value[end:])
