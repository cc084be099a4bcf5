"""Shapes billing systems really produce, each with the one reason KSeF would give."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.ksef.fa3 import InvoiceChecker

TODAY = dt.date(2026, 12, 1)
SELLER, BUYER = seller_nips(2, seed=3)
GOOD = make_invoice(seller_nip=SELLER, buyer_nip=BUYER, number="FV/S/1", issue_date=TODAY)
TEXT = GOOD.decode("utf-8")
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'
MARKER = b"ksef-pipeline samples"  # the SystemInfo text of every sample


def _text(replacement: bytes) -> bytes:
    assert MARKER in GOOD
    return GOOD.replace(MARKER, replacement, 1)


SHAPES = [
    ("no declaration", GOOD.removeprefix(DECLARATION).lstrip(), None),
    ("lower-case utf-8 declaration", GOOD.replace(b'"UTF-8"', b'"utf-8"', 1), None),
    ("CRLF line ends", GOOD.replace(b"\n", b"\r\n"), None),
    ("comment and CDATA", _text(b"<!-- erp --><![CDATA[x & y]]>"), None),
    ("XML 1.1", GOOD.replace(b'version="1.0"', b'version="1.1"', 1), "not-xml"),
    ("single-quoted latin-2 declaration",
     GOOD.replace(b'encoding="UTF-8"', b"encoding='ISO-8859-2'", 1), "encoding"),
    ("UTF-16 big-endian with BOM", "\ufeff".encode("utf-16-be") + TEXT.encode("utf-16-be"),
     "encoding"),
    ("UTF-32 with BOM", TEXT.encode("utf-32"), "encoding"),
    ("windows-1250 bytes, no declaration",
     GOOD.removeprefix(DECLARATION).replace(MARKER, "Łódź".encode("cp1250"), 1), "encoding"),
    ("raw ampersand", _text(b"A & B"), "not-xml"),
    ("HTML entity", _text(b"A&nbsp;B"), "not-xml"),
    ("content after the root", GOOD + b"<Faktura/>", "not-xml"),
    ("whitespace before the declaration", b"\n  " + GOOD, "not-xml"),
    ("gzip of the invoice", gzip.compress(GOOD, mtime=0), "not-xml"),
    ("external entity (XXE)", GOOD.replace(DECLARATION, DECLARATION + b'\n<!DOCTYPE Faktura '
                                           b'[<!ENTITY x SYSTEM "file:///etc/passwd">]>', 1),
     "doctype"),
    ("HTML page", b"<html><body>502 Bad Gateway</body></html>", "schema"),
    ("DEL character", _text(b"a\x7fb"), "forbidden-character"),
    ("reference to a surrogate", _text(b"a&#xD800;b"), "forbidden-character"),
    ("3.2 MB", _text(b"x" * 3_200_000), "too-large"),
    ("1.2 MB without attachment", _text(b"x" * 1_200_000), "too-large"),
]


@pytest.mark.parametrize(("shape", "data", "reason"), SHAPES, ids=[s[0] for s in SHAPES])
def test_input_shape_gets_its_reason(shape: str, data: bytes, reason: str | None) -> None:
    found = InvoiceChecker().check(data, today=TODAY).finding
    assert (found.reason if found else None) == reason, found
    if found is not None:
        assert found.code == 430 and found.message
