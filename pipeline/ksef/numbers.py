"""Identifiers KSeF checks: NIP, KSeF number, invoice hash.

The hash is over the invoice bytes exactly as issued; KSeF correlates results by it,
so nothing here ever re-encodes the document.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re

NIP_WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)
KSEF_NUMBER_LENGTH = 35
_KSEF_NUMBER_RE = re.compile(r"([0-9]{10})-([0-9]{8})-([0-9A-F]{12})-([0-9A-F]{2})")
_TEN_DIGITS = re.compile(r"[0-9]{10}")
_NINE_DIGITS = re.compile(r"[0-9]{9}")


def nip_is_valid(nip: str) -> bool:
    """Polish tax id: 10 digits, weighted checksum mod 11 equal to the last digit."""
    if len(nip) != 10 or not nip.isascii() or not nip.isdigit():
        return False
    check = sum(int(d) * w for d, w in zip(nip, NIP_WEIGHTS, strict=False)) % 11
    return check != 10 and check == int(nip[9])


def nip_with_checksum(first9: str) -> str | None:
    """Complete nine digits to a valid NIP, or None when no check digit exists (mod 11 = 10)."""
    if not _NINE_DIGITS.fullmatch(first9):
        raise ValueError(f"need 9 digits, got {first9!r}")
    check = sum(int(d) * w for d, w in zip(first9, NIP_WEIGHTS, strict=True)) % 11
    return None if check == 10 else first9 + str(check)


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, initial value 0x00, no reflection, no final xor."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def ksef_number(seller_nip: str, acquired: dt.date, technical: int) -> str:
    """Build a KSeF number; `technical` is the 48-bit technical part chosen by the issuer."""
    if not _TEN_DIGITS.fullmatch(seller_nip):
        raise ValueError(f"seller NIP must be 10 digits, got {seller_nip!r}")
    if not 0 <= technical < 1 << 48:
        raise ValueError("technical part must fit in 12 hex digits")
    body = f"{seller_nip}-{acquired:%Y%m%d}-{technical:012X}"
    return f"{body}-{crc8(body.encode('ascii')):02X}"


def ksef_number_problem(number: str) -> str | None:
    """Why `number` is not a valid KSeF number, or None when it is."""
    if len(number) != KSEF_NUMBER_LENGTH:
        return f"length is {len(number)}, a KSeF number has {KSEF_NUMBER_LENGTH} characters"
    match = _KSEF_NUMBER_RE.fullmatch(number)
    if match is None:
        return "format must be NIP(10 digits)-YYYYMMDD-HEX12-CRC2 with upper-case hex"
    try:
        dt.datetime.strptime(match.group(2), "%Y%m%d")
    except ValueError:
        return f"date part {match.group(2)} is not a calendar date"
    expected = f"{crc8(number[:32].encode('ascii')):02X}"
    if match.group(4) != expected:
        return f"checksum {match.group(4)} does not match CRC-8 {expected}"
    return None


def ksef_number_is_valid(number: str) -> bool:
    return ksef_number_problem(number) is None


def sha256_b64(data: bytes) -> str:
    """KSeF's hash form: SHA-256, standard base64 with padding."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def b64url(data: bytes) -> str:
    """Base64url without padding, as used in QR links."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_to_b64url(value: str) -> str:
    """Re-express a standard base64 hash as base64url without padding."""
    return b64url(base64.b64decode(value))
