"""Whatever arrives on the topic, check() answers with a CheckResult and a known reason."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.demo import samples
from pipeline.ksef.fa3 import REASONS, CheckResult, InvoiceChecker
from pipeline.ksef.numbers import sha256_b64

TODAY = dt.date(2026, 3, 2)
CHECKER = InvoiceChecker()
SELLER, BUYER = samples.seller_nips(2, seed=21)
VALID = samples.make_invoice(
    seller_nip=SELLER, buyer_nip=BUYER, number="FV/1", issue_date=TODAY, profile="small"
)
FRAGMENTS = [
    b"<", b">", b"<?", b"?>", b"<!--", b"-->", b"<![CDATA[", b"]]>", b"&", b"&#0;", b"\x00",
    b"\xef\xbb\xbf", b"\xc2\x80", b"\xff", b"<!DOCTYPE a>", b'encoding="latin2"', b"</Fa>",
    b"<P_2>", "ż".encode(), b"\n",
]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_sane(data: bytes, result: CheckResult) -> None:
    assert isinstance(result, CheckResult)
    assert result.facts.size == len(data)
    assert result.facts.sha256_b64 == sha256_b64(data)
    if result.finding is not None:
        assert result.finding.reason in REASONS
        assert result.finding.reason != "unknown", result.finding.message
        assert result.finding.code == REASONS[result.finding.reason][0]


@SETTINGS
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = CHECKER.check(data, today=TODAY)
    assert_sane(data, result)
    assert not result.ok


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, len(VALID)), st.sampled_from(FRAGMENTS)), max_size=4))
def test_mutated_invoices_get_a_known_reason(edits: list[tuple[int, bytes]]) -> None:
    data = VALID
    for position, fragment in sorted(edits, reverse=True):
        data = data[:position] + fragment + data[position:]
    assert_sane(data, CHECKER.check(data, today=TODAY))


@SETTINGS
@given(st.integers(0, len(VALID) - 1), st.integers(0, 255))
def test_single_byte_flips_get_a_known_reason(position: int, value: int) -> None:
    data = VALID[:position] + bytes([value]) + VALID[position + 1 :]
    result = CHECKER.check(data, today=TODAY, explain=False)
    assert_sane(data, result)
