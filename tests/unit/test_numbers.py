"""KSeF numbers, NIP checksums, invoice hashes and base64url."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ksef.numbers import (
    b64_to_b64url,
    b64url,
    crc8,
    ksef_number,
    ksef_number_is_valid,
    ksef_number_problem,
    nip_is_valid,
    nip_with_checksum,
    sha256_b64,
)

OFFICIAL = "5265877635-20250826-0100001AF629-AF"


def test_official_ksef_number_is_valid() -> None:
    assert ksef_number_problem(OFFICIAL) is None
    assert ksef_number_is_valid(OFFICIAL)


def test_generating_the_official_number() -> None:
    assert ksef_number("5265877635", dt.date(2025, 8, 26), 0x0100001AF629) == OFFICIAL


def test_crc8_check_value() -> None:
    # CRC-8 (poly 0x07, init 0, no reflection, no xor out) of "123456789" is 0xF4
    assert crc8(b"123456789") == 0xF4
    assert crc8(b"") == 0


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (OFFICIAL[:-1], "length is 34"),
        (OFFICIAL + "0", "length is 36"),
        (OFFICIAL[:-2] + "AE", "checksum AE does not match CRC-8 AF"),
        (OFFICIAL.lower(), "format"),
        ("5265877635_20250826-0100001AF629-AF", "format"),
        ("5265877635-20251326-0100001AF629-AF", "not a calendar date"),
        ("52658776X5-20250826-0100001AF629-AF", "format"),
    ],
)
def test_invalid_ksef_numbers_say_why(number: str, reason: str) -> None:
    problem = ksef_number_problem(number)
    assert problem is not None and reason in problem
    assert not ksef_number_is_valid(number)


@given(
    st.from_regex(r"[0-9]{10}", fullmatch=True),
    st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2100, 12, 31)),
    st.integers(0, (1 << 48) - 1),
)
def test_generated_numbers_validate_and_any_single_change_is_caught(
    nip: str, day: dt.date, technical: int
) -> None:
    number = ksef_number(nip, day, technical)
    assert len(number) == 35 and ksef_number_is_valid(number)
    position = technical % 32
    if number[position] == "-":
        return
    replacement = "0" if number[position] != "0" else "1"
    mutated = number[:position] + replacement + number[position + 1 :]
    assert not ksef_number_is_valid(mutated)


def test_non_ascii_digits_are_refused_not_crashed_on() -> None:
    arabic_zero = "\u0660"
    assert ksef_number_problem(OFFICIAL[:9] + arabic_zero + OFFICIAL[10:]) is not None
    assert not nip_is_valid("526587763" + arabic_zero)
    with pytest.raises(ValueError, match="9 digits"):
        nip_with_checksum("52658776" + arabic_zero)
    with pytest.raises(ValueError, match="10 digits"):
        ksef_number("526587763" + arabic_zero, dt.date(2025, 1, 1), 1)


def test_ksef_number_refuses_bad_parts() -> None:
    with pytest.raises(ValueError, match="10 digits"):
        ksef_number("123", dt.date(2025, 1, 1), 1)
    with pytest.raises(ValueError, match="12 hex digits"):
        ksef_number("5265877635", dt.date(2025, 1, 1), 1 << 48)


@pytest.mark.parametrize("nip", ["5265877635", "1111111111", "7680002466"])
def test_valid_nips(nip: str) -> None:
    assert nip_is_valid(nip)


@pytest.mark.parametrize("nip", ["5265877636", "123456789", "12345678901", "52658776a5", ""])
def test_invalid_nips(nip: str) -> None:
    assert not nip_is_valid(nip)


@given(st.from_regex(r"[0-9]{9}", fullmatch=True))
def test_nip_with_checksum_completes_or_reports_impossible(first9: str) -> None:
    nip = nip_with_checksum(first9)
    if nip is None:
        assert not any(nip_is_valid(first9 + str(d)) for d in range(10))
    else:
        assert nip.startswith(first9) and nip_is_valid(nip)
        assert sum(nip_is_valid(first9 + str(d)) for d in range(10)) == 1


def test_invoice_hash_is_sha256_base64_of_the_exact_bytes() -> None:
    xml = b'<?xml version="1.0" encoding="UTF-8"?>\n<Faktura/>'
    assert sha256_b64(xml) == base64.b64encode(hashlib.sha256(xml).digest()).decode()
    assert sha256_b64(xml) != sha256_b64(xml.replace(b"\n", b"\r\n"))


@given(st.binary(max_size=64))
def test_base64url_round_trips_without_padding(data: bytes) -> None:
    encoded = b64url(data)
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)) == data
    assert b64_to_b64url(base64.b64encode(data).decode()) == encoded
