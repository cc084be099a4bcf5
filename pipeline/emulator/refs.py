"""Identifiers the emulator hands out: reference numbers and KSeF numbers.

A reference number looks like KSeF's: `YYYYMMDD-TT-HHHHHHHHHH-HHHHHHHHHH-CC` (36
characters; TT is the kind, e.g. SO online session, SB batch session, EE invoice,
AU authentication, CR challenge, EU UPO; CC a CRC-8 over the rest).
"""

from __future__ import annotations

import datetime as dt
import secrets

from pipeline.ksef.numbers import crc8, ksef_number

CHALLENGE = "CR"
AUTH = "AU"
ONLINE_SESSION = "SO"
BATCH_SESSION = "SB"
INVOICE = "EE"
UPO = "EU"
TOKEN = "TK"
ENROLLMENT = "CE"

# first byte of the technical part tells the channel, as in KSeF's published numbers
ONLINE_CHANNEL = 0x02
BATCH_CHANNEL = 0x01


def reference_number(kind: str, moment: dt.datetime) -> str:
    if len(kind) != 2:
        raise ValueError(f"reference kind must have two characters, got {kind!r}")
    stamp = int(moment.timestamp() * 1000) & 0xFFFFFFFFFF
    body = f"{moment:%Y%m%d}-{kind}-{stamp:010X}-{secrets.randbits(40):010X}"
    return f"{body}-{crc8(body.encode('ascii')):02X}"


def technical_part(channel: int, sequence: int) -> int:
    """48 bits: channel byte, then a 40-bit sequence mixed so numbers do not look serial."""
    mixed = (sequence * 0x9E3779B97F) & 0xFFFFFFFFFF
    return (channel << 40) | mixed


def new_ksef_number(seller_nip: str, day: dt.date, channel: int, sequence: int) -> str:
    return ksef_number(seller_nip, day, technical_part(channel, sequence))
