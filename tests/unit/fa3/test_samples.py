"""The sample generator: valid, deterministic, sized as promised."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from pipeline.demo import samples
from pipeline.ksef.fa3.schema import FA3_ROOT_TAG, lxml_schema
from pipeline.ksef.numbers import nip_is_valid

DAY = dt.date(2026, 3, 2)
SELLER, BUYER = samples.seller_nips(2, seed=3)


def xsd_problem(data: bytes) -> str | None:
    schema = lxml_schema()
    root = etree.fromstring(data)
    if schema.validate(etree.ElementTree(root)):
        return None
    return str(schema.error_log.last_error)


def test_seller_nips_are_valid_distinct_and_reproducible() -> None:
    nips = samples.seller_nips(500, seed=11)
    assert len(set(nips)) == 500
    assert all(nip_is_valid(n) for n in nips)
    assert samples.seller_nips(500, seed=11) == nips
    assert samples.seller_nips(500, seed=12) != nips


@pytest.mark.parametrize("profile", samples.PROFILES)
@pytest.mark.parametrize("attachment", [False, True])
@pytest.mark.parametrize("buyer", [BUYER, None])
def test_every_profile_validates_against_the_xsd(
    profile: str, attachment: bool, buyer: str | None
) -> None:
    data = samples.make_invoice(
        seller_nip=SELLER, number="FV/1/03/2026", issue_date=DAY, profile=profile,
        buyer_nip=buyer, attachment=attachment,
    )
    assert xsd_problem(data) is None
    assert etree.fromstring(data).tag == FA3_ROOT_TAG
    assert (b"<Zalacznik>" in data) is attachment


@pytest.mark.parametrize("kind", samples.KINDS)
def test_every_invoice_kind_validates_and_is_labelled(kind: str) -> None:
    data = samples.make_invoice(
        seller_nip=SELLER, number="K/7", issue_date=DAY, kind=kind, buyer_nip=BUYER
    )
    assert xsd_problem(data) is None
    assert f"<RodzajFaktury>{kind}</RodzajFaktury>".encode() in data


@pytest.mark.parametrize(
    ("profile", "low", "high"),
    [("small", 3_500, 5_000), ("typical", 10_500, 13_500), ("large", 220_000, 260_000)],
)
def test_profile_sizes(profile: str, low: int, high: int) -> None:
    sizes = [
        len(samples.make_invoice(seller_nip=nip, number=f"FV/{i}", issue_date=DAY,
                                 profile=profile, buyer_nip=BUYER))
        for i, nip in enumerate(samples.seller_nips(10))
    ]
    assert all(low <= size <= high for size in sizes), sizes


def test_output_is_deterministic_and_depends_on_inputs() -> None:
    def make(number: str = "FV/1", seed: int = 0) -> bytes:
        return samples.make_invoice(
            seller_nip=SELLER, number=number, issue_date=DAY, seed=seed, buyer_nip=BUYER
        )

    assert make() == make()
    assert make() != make(seed=1)
    assert make() != make(number="FV/2")


def test_unknown_profile_and_kind_are_refused() -> None:
    with pytest.raises(ValueError, match="profile"):
        samples.make_invoice(seller_nip=SELLER, number="1", issue_date=DAY, profile="huge")
    with pytest.raises(ValueError, match="kind"):
        samples.make_invoice(seller_nip=SELLER, number="1", issue_date=DAY, kind="FOO")


def test_bad_invoices_cover_the_reasons() -> None:
    reasons = {reason for reason, _ in samples.bad_invoices(DAY)}
    assert reasons >= {
        "not-xml", "encoding", "bom", "processing-instruction", "forbidden-character",
        "too-large", "schema", "nip-checksum", "issue-date-in-future", "attachments-not-allowed",
    }
