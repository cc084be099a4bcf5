"""Byte-level checks: the forbidden-character table and the parser shortcuts it relies on."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from pipeline.demo import samples
from pipeline.ksef.fa3.checker import invoice_parser
from pipeline.ksef.fa3.precheck import (
    _DISCOURAGED_LEADS,
    _FORBIDDEN,
    character_problem,
    line_and_column,
    precheck,
)
from pipeline.ksef.fa3.schema import lxml_schema

SURROGATES = range(0xD800, 0xE000)


def is_forbidden(code_point: int) -> bool:
    """Straight from the KSeF list plus the C0 controls XML 1.0 has no place for."""
    return (
        (code_point < 0x20 and code_point not in (0x09, 0x0A, 0x0D))
        or 0x7F <= code_point <= 0x84
        or 0x86 <= code_point <= 0x9F
        or 0xFDD0 <= code_point <= 0xFDEF
        or code_point & 0xFFFF in (0xFFFE, 0xFFFF)
    )


def test_forbidden_pattern_matches_exactly_the_listed_code_points() -> None:
    wrong = [
        hex(cp)
        for cp in range(0x110000)
        if cp not in SURROGATES
        and (_FORBIDDEN.fullmatch(chr(cp).encode("utf-8")) is not None) != is_forbidden(cp)
    ]
    assert wrong == []


def test_hot_path_leads_cover_everything_the_parser_lets_through() -> None:
    """The precheck only looks for lead bytes; the rest must be refused by libxml2."""
    parser = invoice_parser()
    for cp in range(0x110000):
        if cp in SURROGATES or not is_forbidden(cp):
            continue
        encoded = chr(cp).encode("utf-8")
        if encoded[:1] in _DISCOURAGED_LEADS:
            continue
        with pytest.raises(etree.XMLSyntaxError):
            etree.fromstring(b"<a>" + encoded + b"</a>", parser)


@pytest.mark.parametrize("data", [b"<a/>", b"<a>plain ascii</a>", "<a>zażółć §</a>".encode()])
def test_clean_documents_pass_precheck(data: bytes) -> None:
    assert precheck(data) is None
    assert character_problem(data) is None


def test_line_and_column() -> None:
    data = b"ab\ncd\nef"
    assert line_and_column(data, 0) == (1, 1)
    assert line_and_column(data, 4) == (2, 2)
    assert line_and_column(data, 7) == (3, 2)


def test_first_forbidden_character_is_reported_when_there_are_several() -> None:
    data = "<a>ok\ufdd0 then \u0081</a>".encode()
    finding = precheck(data)
    assert finding is not None and "U+FDD0" in finding.message


def _verdicts(data: bytes) -> tuple[bool, bool]:
    schema = lxml_schema()
    plain = etree.fromstring(data, invoice_parser())
    compact = etree.fromstring(data, invoice_parser(drop_blank_text=True))
    return bool(schema.validate(plain)), bool(schema.validate(compact))


def test_dropping_blank_text_never_changes_the_verdict_without_comments_or_cdata() -> None:
    """The checker validates a tree without whitespace-only text when the bytes have no '<!'."""
    seller, buyer = samples.seller_nips(2, seed=9)
    good = samples.make_invoice(
        seller_nip=seller, buyer_nip=buyer, number="FV/1", issue_date=dt.date(2026, 3, 2)
    )
    variants = [
        good,
        good.replace(b"<P_2>FV/1</P_2>", b"<P_2>   </P_2>"),
        good.replace(b"<P_2>FV/1</P_2>", b"<P_2>\n</P_2>"),
        good.replace(b"<P_2>FV/1</P_2>", b"<P_2>  FV/1  </P_2>"),
        good.replace(seller.encode(), b" " + seller.encode()),
        good.replace(seller.encode(), seller.encode() + b"\n"),
        good.replace(b"<StopkaFaktury>", b"<StopkaFaktury>  "),
        good.replace(b"<NrRB>", b"<NrRB>     "),
        good.replace(b"<P_1>", b"<P_1>  "),
        good.replace(b"  <Fa>", b"  x<Fa>"),
    ]
    for data in variants:
        assert b"<!" not in data
        plain, compact = _verdicts(data)
        assert plain == compact, data[:0]
    for reason, data in samples.bad_invoices(dt.date(2026, 3, 2)):
        if reason in ("schema", "nip-checksum", "issue-date-in-future"):
            assert len(set(_verdicts(data))) == 1


def _with_reference(reference: str) -> bytes:
    xml = samples.make_invoice(seller_nip="5265877635", number="FV/1",
                               issue_date=dt.date(2026, 11, 20), profile="small", seed=1)
    return xml.replace(b"</P_2>", reference.encode() + b"</P_2>", 1)


@pytest.mark.parametrize("code_point", [0x01, 0x0B, 0x7F, 0x80, 0x84, 0x86, 0x9F, 0xD800,
                                        0xFDD0, 0xFFFE, 0x1FFFF, 0x10FFFF, 0x110000])
def test_character_references_to_unwanted_code_points_are_forbidden(code_point: int) -> None:
    for reference in (f"&#{code_point};", f"&#x{code_point:X};"):
        problem = precheck(_with_reference(reference))
        assert problem is not None and problem.reason == "forbidden-character", reference
        assert reference in problem.message and "<P_2>" in problem.message
        assert problem.line is not None


@pytest.mark.parametrize("code_point", [0x09, 0x0A, 0x0D, 0x85, 0x105, 0x20AC, 0xFDCF,
                                        0xFDF0, 0xFFFD, 0x1F600])
def test_character_references_to_ordinary_characters_pass(code_point: int) -> None:
    assert not is_forbidden(code_point)
    assert precheck(_with_reference(f"&#x{code_point:x};")) is None
