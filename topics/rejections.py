"""The one way to build a `Rejection`: every field bounded, so any rejection record fits
far under the 1 MiB of `ksef.invoices.rejected` whatever the input quoted.

A rejection is kept 400 days and read by people and billing systems: it names the input
(invoice id, origin, hash) and says why in a few lines; it never carries the input
itself. Text fields are cut to fixed lengths (a cut string ends with "..."), `details`
to a few short values (16 KiB of JSON at most), and the names of the fields that were
cut are listed in `details["truncated"]` ("details" when any entry was cut or left
out). A cut invoice id also gets `details["invoice_id_sha256"]` (hex of its UTF-8 bytes)
and its length, so the producer can still match it; the `origin` (topic, partition,
offset) names the input record exactly in any case.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from topics.records import KafkaRef, Rejection

INVOICE_ID_MAX = 256  # characters; the record key of the rejection too
MESSAGE_MAX = 1000
SHORT_MAX = 256  # stage, reason, seller NIP, invoice number, hash, times, session ref
DETAIL_KEYS_MAX = 24
DETAIL_KEY_MAX = 64
DETAIL_TEXT_MAX = 500  # one string value, or the JSON of one structured value
DETAILS_MAX_BYTES = 16 * 1024  # all of details as JSON
TOPIC_MAX = 256
# Worst case: every character of every field a control character (six bytes as JSON).
REJECTION_MAX_BYTES = 48 * 1024
ELLIPSIS = "..."


def cut(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its start and "..." (`limit` in all)."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS


def _detail(value: Any) -> tuple[Any, bool]:
    """A details value within DETAIL_TEXT_MAX, and whether it had to be cut."""
    if value is None or isinstance(value, bool | int | float):
        return value, False
    if isinstance(value, str):
        short = cut(value, DETAIL_TEXT_MAX)
        return short, short is not value
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
        return cut(text, DETAIL_TEXT_MAX), True
    if len(text) <= DETAIL_TEXT_MAX:
        return value, False
    return cut(text, DETAIL_TEXT_MAX), True  # a structured value too long: its JSON, cut


def _details(details: dict[str, Any] | None, truncated: list[str]) -> dict[str, Any]:
    """At most DETAIL_KEYS_MAX entries, each value cut, DETAILS_MAX_BYTES of JSON in all."""
    out: dict[str, Any] = {}
    cut_any = False
    budget = DETAILS_MAX_BYTES
    for index, (key, value) in enumerate((details or {}).items()):
        if key == "truncated":
            continue  # ours to fill
        name = cut(str(key), DETAIL_KEY_MAX)
        short, was_cut = _detail(value)
        size = len(orjson.dumps({name: short}))
        if index >= DETAIL_KEYS_MAX or size > budget:
            cut_any = True
            break
        budget -= size
        cut_any = cut_any or was_cut or name != key
        out[name] = short
    if cut_any:
        truncated.append("details")
    return out


def _origin(origin: KafkaRef | None, truncated: list[str]) -> KafkaRef | None:
    if origin is None or len(origin.topic) <= TOPIC_MAX:
        return origin
    truncated.append("origin")
    return KafkaRef(cut(origin.topic, TOPIC_MAX), origin.partition, origin.offset)


def build_rejection(*, invoice_id: str, stage: str, code: int, reason: str, message: str,
                    rejected_at: str, details: dict[str, Any] | None = None,
                    seller_nip: str | None = None, invoice_number: str | None = None,
                    sha256: str | None = None, received_at: str | None = None,
                    origin: KafkaRef | None = None, session_ref: str | None = None
                    ) -> Rejection:
    """A `Rejection` with every field within its limit (see the module doc)."""
    truncated: list[str] = []

    def short(name: str, value: str | None, limit: int = SHORT_MAX) -> str | None:
        if value is None:
            return None
        bounded = cut(value, limit)
        if bounded is not value:
            truncated.append(name)
        return bounded

    bounded_details = _details(details, truncated)
    bounded_id = short("invoice_id", invoice_id, INVOICE_ID_MAX) or ""
    if bounded_id is not invoice_id:
        raw = invoice_id.encode("utf-8", "surrogatepass")
        bounded_details["invoice_id_sha256"] = hashlib.sha256(raw).hexdigest()
        bounded_details["invoice_id_bytes"] = len(raw)
    rejection = Rejection(
        invoice_id=bounded_id,
        stage=short("stage", stage) or "",
        code=code,
        reason=short("reason", reason) or "",
        message=short("message", message, MESSAGE_MAX) or "",
        rejected_at=short("rejected_at", rejected_at) or "",
        details=bounded_details,
        seller_nip=short("seller_nip", seller_nip),
        invoice_number=short("invoice_number", invoice_number),
        sha256=short("sha256", sha256),
        received_at=short("received_at", received_at),
        origin=_origin(origin, truncated),
        session_ref=short("session_ref", session_ref),
    )
    if truncated:
        rejection.details["truncated"] = truncated
    return rejection
