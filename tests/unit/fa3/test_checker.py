"""InvoiceChecker: every reason on its bad input, valid invoices pass, facts are right."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.demo import samples
from pipeline.ksef.fa3 import REASONS, CheckResult, InvoiceChecker, nip_problem
from pipeline.ksef.numbers import nip_is_valid, nip_with_checksum, sha256_b64

TODAY = dt.date(2026, 3, 2)
SELLER, BUYER, THIRD = samples.seller_nips(3, seed=5)
CHECKER = InvoiceChecker()
BAD = samples.bad_invoices(TODAY)


def check(data: bytes, **options: bool) -> CheckResult:
    return CHECKER.check(data, today=TODAY, **options)


def invoice(**options: object) -> bytes:
    kwargs: dict[str, object] = {
        "seller_nip": SELLER, "buyer_nip": BUYER, "number": "FV/7/03/2026",
        "issue_date": TODAY, "profile": "small",
    }
    kwargs.update(options)
    return samples.make_invoice(**kwargs)  # type: ignore[arg-type]


def wrong_check_digit(nip: str) -> str:
    return nip[:9] + str((int(nip[9]) + 1) % 10)


def insert_after_buyer(data: bytes, block: str) -> bytes:
    return data.replace(b"</Podmiot2>\n", b"</Podmiot2>\n" + block.encode(), 1)


@pytest.mark.parametrize(("reason", "data"), BAD, ids=[f"{i}-{r}" for i, (r, _) in enumerate(BAD)])
def test_each_bad_input_is_rejected_for_its_reason(reason: str, data: bytes) -> None:
    result = check(data)
    assert result.finding is not None
    assert result.finding.reason == reason, result.finding.message
    assert result.finding.code == REASONS[reason][0]
    assert result.finding.message
    assert not result.ok
    assert result.facts.size == len(data)
    assert result.facts.sha256_b64 == sha256_b64(data)


def test_reason_vocabulary_and_codes() -> None:
    required = {
        "not-xml", "encoding", "bom", "processing-instruction", "forbidden-character",
        "too-large", "schema", "nip-checksum", "issue-date-in-future", "duplicate",
        "attachments-not-allowed",
    }
    assert required <= REASONS.keys()
    assert REASONS["schema"][0] == 430
    assert REASONS["duplicate"][0] == 440
    assert REASONS["attachments-not-allowed"][0] == 415
    assert REASONS["nip-checksum"][0] == REASONS["issue-date-in-future"][0] == 450
    assert REASONS["unknown"][0] == 500
    assert {reason for reason, _ in BAD} == REASONS.keys() - {"duplicate", "unknown"}


@pytest.mark.parametrize("profile", samples.PROFILES)
def test_valid_invoices_pass_with_their_facts(profile: str) -> None:
    data = invoice(profile=profile, number="FV/12/03/2026", kind="KOR")
    result = check(data)
    assert result.ok, result.finding
    facts = result.facts
    assert (facts.seller_nip, facts.buyer_nip) == (SELLER, BUYER)
    assert (facts.invoice_number, facts.issue_date, facts.kind) == ("FV/12/03/2026", TODAY, "KOR")
    assert not facts.has_attachments
    assert (facts.size, facts.sha256_b64) == (len(data), sha256_b64(data))


def test_consumer_buyer_has_no_nip_and_earlier_issue_date_passes() -> None:
    result = check(invoice(buyer_nip=None, issue_date=TODAY - dt.timedelta(days=3)))
    assert result.ok, result.finding
    assert result.facts.buyer_nip is None
    assert result.facts.issue_date == TODAY - dt.timedelta(days=3)


def test_accepts_bytearray_and_memoryview() -> None:
    data = invoice()
    assert check(bytearray(data)).ok
    assert check(memoryview(data)).facts.sha256_b64 == sha256_b64(data)  # type: ignore[arg-type]


def test_attachments_pass_only_when_allowed() -> None:
    data = invoice(attachment=True)
    refused = check(data)
    assert refused.finding is not None
    assert refused.finding.reason == "attachments-not-allowed"
    assert refused.finding.path == "/Faktura/Zalacznik"
    assert refused.facts.has_attachments
    assert check(data, attachments_allowed=True).ok


def test_size_limit_is_three_megabytes_with_an_attachment() -> None:
    big = samples.render_invoice(
        seller_nip=SELLER, buyer_nip=BUYER, number="FV/BIG", issue_date=TODAY, lines=2_900,
        attachment=True,
    )
    assert 1_000_000 < len(big) < 3_000_000
    assert check(big, attachments_allowed=True).ok
    without = big.replace(big[big.index(b"  <Zalacznik>") : big.index(b"</Faktura>")], b"")
    finding = check(without, attachments_allowed=True).finding
    assert finding is not None and finding.reason == "too-large"
    assert f"{len(without):,} bytes" in finding.message


def test_seller_nip_message_names_value_path_and_line() -> None:
    bad_nip = wrong_check_digit(SELLER)
    result = check(invoice().replace(SELLER.encode(), bad_nip.encode()))
    finding = result.finding
    assert finding is not None and finding.reason == "nip-checksum"
    assert finding.path == "/Faktura/Podmiot1/DaneIdentyfikacyjne/NIP"
    assert bad_nip in finding.message and finding.path in finding.message
    assert finding.line is not None and f"line {finding.line}" in finding.message
    assert result.facts.seller_nip == bad_nip  # facts stay readable for the rejection record


def test_third_party_and_authorised_party_nips_are_checked() -> None:
    third = (
        "  <Podmiot3>\n    <DaneIdentyfikacyjne>\n"
        f"      <NIP>{wrong_check_digit(THIRD)}</NIP>\n      <Nazwa>Faktor</Nazwa>\n"
        "    </DaneIdentyfikacyjne>\n    <Rola>1</Rola>\n  </Podmiot3>\n"
    )
    internal = (
        "  <Podmiot3>\n    <DaneIdentyfikacyjne>\n"
        f"      <IDWew>{wrong_check_digit(THIRD)}-00001</IDWew>\n      <Nazwa>Oddział</Nazwa>\n"
        "    </DaneIdentyfikacyjne>\n    <Rola>4</Rola>\n  </Podmiot3>\n"
    )
    authorised = (
        "  <PodmiotUpowazniony>\n    <DaneIdentyfikacyjne>\n"
        f"      <NIP>{wrong_check_digit(THIRD)}</NIP>\n      <Nazwa>Komornik</Nazwa>\n"
        "    </DaneIdentyfikacyjne>\n    <Adres>\n      <KodKraju>PL</KodKraju>\n"
        "      <AdresL1>ul. Długa 1</AdresL1>\n    </Adres>\n    <RolaPU>1</RolaPU>\n"
        "  </PodmiotUpowazniony>\n"
    )
    good_third = third.replace(wrong_check_digit(THIRD), THIRD)
    cases = [
        (third, "/Faktura/Podmiot3[1]/DaneIdentyfikacyjne/NIP"),
        (good_third + third, "/Faktura/Podmiot3[2]/DaneIdentyfikacyjne/NIP"),
        (internal, "/Faktura/Podmiot3[1]/DaneIdentyfikacyjne/IDWew"),
        (authorised, "/Faktura/PodmiotUpowazniony/DaneIdentyfikacyjne/NIP"),
    ]
    for block, path in cases:
        data = insert_after_buyer(invoice(), block)
        finding = check(data).finding
        assert finding is not None and finding.reason == "nip-checksum", finding
        assert finding.path == path
        assert check(data, verify_nip_checksums=False).ok
    assert check(insert_after_buyer(invoice(), good_third)).ok


def test_nip_problem_explains_each_failure() -> None:
    assert nip_problem(SELLER) is None
    assert "10 digits" in (nip_problem("12345") or "")
    impossible = next(
        f"{n:09d}" for n in range(100_000_000, 100_001_000) if nip_with_checksum(f"{n:09d}") is None
    )
    assert "10 mod 11" in (nip_problem(impossible + "0") or "")
    wrong = nip_problem(wrong_check_digit(SELLER)) or ""
    assert f"check digit is {wrong_check_digit(SELLER)[9]}" in wrong
    for first9 in ("123456789", "526104082", "777000000"):
        for last in "0123456789":
            assert (nip_problem(first9 + last) is None) == nip_is_valid(first9 + last)


def test_issue_date_today_passes_and_tomorrow_names_both_days() -> None:
    assert check(invoice(issue_date=TODAY)).ok
    tomorrow = TODAY + dt.timedelta(days=1)
    finding = check(invoice(issue_date=tomorrow)).finding
    assert finding is not None and finding.reason == "issue-date-in-future"
    assert tomorrow.isoformat() in finding.message and TODAY.isoformat() in finding.message
    assert finding.path == "/Faktura/Fa/P_1"


def test_schema_failure_gives_element_path_with_and_without_xmlschema() -> None:
    data = invoice().replace(b"<P_2>FV/7/03/2026</P_2>", b"")
    explained = check(data).finding
    plain = check(data, explain=False).finding
    assert explained is not None and plain is not None
    assert explained.reason == plain.reason == "schema"
    assert explained.path == plain.path == "/Faktura/Fa/P_6"
    assert "xmlschema" in explained.message and "xmlschema" not in plain.message
    assert "Expected is ( P_2 )" in plain.message
    assert "{http" not in plain.message  # namespaces stripped for humans
    facts = check(data).facts
    assert facts.seller_nip == SELLER and facts.invoice_number is None


def test_schema_messages_do_not_quote_long_contents() -> None:
    secret = "Tajna nazwa klienta " * 30
    data = invoice().replace(b"<P_1M>", f"<P_1M>{secret}".encode(), 1)
    finding = check(data).finding
    assert finding is not None and finding.reason == "schema"
    assert secret[:60] not in finding.message
    assert finding.path == "/Faktura/Fa/P_1M"


def test_wrong_root_messages_name_what_was_found() -> None:
    fa2 = invoice().replace(b"2025/06/25/13775", b"2023/06/29/12648")
    finding = check(fa2).finding
    assert finding is not None and finding.reason == "schema" and "FA(2)" in finding.message
    other = invoice().replace(b'xmlns="http://crd.gov.pl/wzor/2025/06/25/13775/"', b"")
    finding = check(other).finding
    assert finding is not None and "no namespace" in finding.message


def test_question_marks_comments_and_cdata_are_not_mistaken_for_problems() -> None:
    data = invoice().replace(
        b"<SystemInfo>ksef-pipeline samples",
        b"<SystemInfo>https://example.pl/?a=1&amp;b=2 ok?",
    )
    assert check(data).ok
    commented = data.replace(b"<Fa>", b"<!-- note: <?not a pi?> -->\n  <Fa>")
    commented = commented.replace(b"<P_1M>", b"<P_1M><![CDATA[Gda]]>", 1)
    assert check(commented).ok, check(commented).finding
    prolog = b'<?xml version="1.0" encoding="utf-8"?>\n<!-- exported -->\n' + data.split(
        b"?>\n", 1
    )[1]
    assert check(prolog).ok, check(prolog).finding
    assert check(b"\n  " + data.split(b"?>\n", 1)[1]).ok


@pytest.mark.parametrize(
    ("data", "reason", "fragment"),
    [
        (b"<?xml version='1.0' encoding='UTF8'?><a/>", "encoding", "'UTF8'"),
        (b'<?xml version="1.1" encoding="UTF-8"?><a/>', "not-xml", "version '1.1'"),
        ("<a>\u0085</a>".encode(), "schema", "root element"),  # NEL is allowed
        (b"<a>\x7f</a>", "forbidden-character", "U+007F"),
        ("<a>\ufffe</a>".encode(), "forbidden-character", "U+FFFE"),
        ("<a>\U0010ffff</a>".encode(), "forbidden-character", "U+10FFFF"),
        ("<a>\u00a0§\u20ac</a>".encode(), "schema", "root element"),  # NBSP etc. are fine
        (b"<a>\xed\xa0\x80</a>", "encoding", "byte offset 3"),  # UTF-8 encoded surrogate
        (b"<a>\xc2\x80\xff</a>", "encoding", "byte offset 5"),
        (b"\x00<\x00a\x00/\x00>", "encoding", "UTF-16"),
        (b"\xfe\xff\x00<", "encoding", "UTF-16 (big-endian)"),
        (b"\xef\xbb\xbf<a/>", "bom", "EF BB BF"),
        (b"", "not-xml", "empty"),
        (b"<a>&nbsp;</a>", "not-xml", "nbsp"),
    ],
)
def test_edge_inputs(data: bytes, reason: str, fragment: str) -> None:
    finding = check(data).finding
    assert finding is not None
    assert (finding.reason, fragment in finding.message) == (reason, True), finding.message


def test_forbidden_character_message_locates_it() -> None:
    data = invoice().replace(b"ksef-pipeline", "ksef\u0093pipeline".encode())
    finding = check(data).finding
    assert finding is not None and finding.reason == "forbidden-character"
    offset = data.index("\u0093".encode())
    line = data.count(b"\n", 0, offset) + 1
    assert finding.line == line
    assert f"byte offset {offset}" in finding.message and "<SystemInfo>" in finding.message


def test_concurrent_checks_agree_with_sequential_ones() -> None:
    inputs = [data for _, data in BAD] + [invoice(number=f"FV/{i}", seed=i) for i in range(24)]
    expected = [check(data) for data in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(check, inputs))
    assert results == expected


def test_large_invalid_invoices_are_explained_by_lxml_alone() -> None:
    data = invoice(profile="large").replace(b"<P_2>FV/7/03/2026</P_2>", b"")
    finding = check(data).finding
    assert finding is not None and finding.reason == "schema"
    assert finding.path == "/Faktura/Fa/P_6" and "xmlschema" not in finding.message
