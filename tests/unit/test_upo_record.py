"""The `ksef.upo` record: the UPO's exact bytes behind a metadata header; old records read."""

from __future__ import annotations

import dataclasses
import struct
import zlib

import orjson
import pytest

from pipeline.emulator import upo_render
from pipeline.ksef.upo import parse_upo
from topics.records import UpoDocument
from topics.upo_document import UpoRecordError, frame_upo, read_upo

META = UpoDocument(session_ref="20261205-SB-0000000000-0000000000-00", seller_nip="5260250274",
                   upo_ref="20261205-UP-0000000000-0000000000-00",
                   fetched_at="2026-12-05T10:00:00+00:00")


def _upo(invoices: int) -> bytes:
    rows = [{"seller_nip": "5260250274", "ksef_number": f"5260250274-20261205-{i:012X}-AB",
             "invoice_number": f"FV/{i}", "issue_date": "2026-12-05",
             "invoicing_date": "2026-12-05T10:00:00+00:00",
             "acquisition_date": "2026-12-05T10:00:01+00:00",
             "invoice_hash": f"{i:043d}=", "invoicing_mode": "Offline"} for i in range(invoices)]
    return upo_render.render({"reference": META.session_ref, "nip": "5260250274",
                              "token_reference": "T"}, rows)


def test_the_upo_travels_byte_for_byte_deflated() -> None:
    xml = _upo(500)
    assert not xml.decode("utf-8").isascii()  # "Ministerstwo Finansów": text would be UCS-2
    value = frame_upo(META, xml)
    meta, back = read_upo(value)
    assert meta == dataclasses.replace(META, compression="deflate")
    assert back == xml
    assert len(parse_upo(back).entries) == 500
    assert len(value) < len(xml) / 4  # deflated behind a header, not an escaped copy
    # what a consumer in another language does: inflate the rest after the metadata
    (length,) = struct.unpack(">I", value[4:8])
    assert zlib.decompress(value[8 + length:], wbits=-15) == xml


def test_a_record_of_the_uncompressed_framing_is_still_read() -> None:
    xml = _upo(3)
    meta_json = orjson.dumps(META)  # no compression field: written before it existed
    value = b"KSU1" + struct.pack(">I", len(meta_json)) + meta_json + xml
    meta, back = read_upo(value)
    assert meta == META and meta.compression == "none"
    assert back == xml


def test_a_torn_or_unknown_compression_is_refused() -> None:
    value = frame_upo(META, _upo(20))
    with pytest.raises(UpoRecordError, match=r"truncated|inflate"):
        read_upo(value[:-40])
    meta_json = orjson.dumps(dataclasses.replace(META, compression="zstd"))
    with pytest.raises(UpoRecordError, match="zstd"):
        read_upo(b"KSU1" + struct.pack(">I", len(meta_json)) + meta_json + b"x")


def test_a_record_of_the_former_json_format_is_still_read() -> None:
    xml = _upo(3)
    legacy = orjson.dumps({"session_ref": META.session_ref, "seller_nip": META.seller_nip,
                           "upo_ref": META.upo_ref, "upo_xml": xml.decode("utf-8"),
                           "fetched_at": META.fetched_at})
    meta, back = read_upo(legacy)
    assert meta == META
    assert back == xml


@pytest.mark.parametrize("value", [b"", b"KSU", b"KSU1\x00\x00\x10\x00{}",
                                   b"XXXX\x00\x00\x00\x02{}", b"KSU1\x00\x00\x00\x02[]",
                                   b'{"session_ref": 1}',
                                   b"KSU1\x00\x00\x00\x02{}<xml/>"])
def test_anything_else_is_refused_with_a_reason(value: bytes) -> None:
    with pytest.raises(UpoRecordError):
        read_upo(value)
