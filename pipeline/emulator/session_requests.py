"""Parsing of the session-opening request bodies shared by online and batch sessions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.emulator.errors import UNKNOWN_KEY, VALIDATION, bad_request
from pipeline.emulator.request_helpers import b64_field, field
from pipeline.emulator.state import Emulator

SUPPORTED_FORM = {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"}
HASH_LENGTH = 44


@dataclass(frozen=True)
class Encryption:
    wrapped_key: bytes
    iv: bytes


def form_code(body: dict[str, Any]) -> str:
    form = field(body, "formCode", dict)
    if {k: form.get(k) for k in SUPPORTED_FORM} != SUPPORTED_FORM:
        raise bad_request(VALIDATION, "Wskazany kod formularza nie jest wspierany "
                          "(the emulator accepts FA (3) / 1-0E / FA).")
    return json.dumps(SUPPORTED_FORM)


def encryption(emu: Emulator, body: dict[str, Any]) -> Encryption:
    info = field(body, "encryption", dict)
    wrapped = b64_field(info, "encryptedSymmetricKey")
    iv = b64_field(info, "initializationVector")
    key_id = field(info, "publicKeyId", str, required=False)
    if key_id is not None and key_id != emu.keys.symmetric.public_key_id:
        raise bad_request(UNKNOWN_KEY, f"Klucz o identyfikatorze {key_id} nie jest wspierany.")
    assert wrapped is not None and iv is not None
    if len(iv) != 16:
        raise bad_request(VALIDATION, f"initializationVector must be 16 bytes, not {len(iv)}")
    return Encryption(wrapped, iv)


def sha_field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = field(body, name, str, required=required)
    if value is not None and len(value) != HASH_LENGTH:
        raise bad_request(VALIDATION, f"'{name}' must be a base64 SHA-256 ({HASH_LENGTH} chars)")
    return value  # type: ignore[no-any-return]


def positive_int(body: dict[str, Any], name: str, maximum: int | None = None) -> int:
    value: int = field(body, name, int)
    if value < 1 or (maximum is not None and value > maximum):
        limit = f"1..{maximum}" if maximum is not None else ">= 1"
        raise bad_request(VALIDATION, f"'{name}' must be {limit}, got {value}")
    return value
