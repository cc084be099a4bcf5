"""Reading a KSeF UPO (official receipt, schema upo-v4-3): which invoices KSeF accepted.

A session UPO page lists up to 10,000 accepted invoices with KSeF number and hash, so one
download settles a whole batch; paging per-invoice results instead would take ten
requests per batch against a limit of 20 a minute.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

UPO_NAMESPACE = "http://upo.schematy.mf.gov.pl/KSeF/v4-3"
_N = f"{{{UPO_NAMESPACE}}}"


class UpoError(ValueError):
    """The document is not a KSeF UPO we can read."""


@dataclass(frozen=True, slots=True)
class UpoEntry:
    seller_nip: str
    ksef_number: str
    invoice_number: str
    issue_date: str
    invoicing_date: str
    acquisition_date: str
    invoice_hash: str
    invoicing_mode: str


@dataclass(frozen=True)
class UpoDocument:
    session_ref: str
    entries: tuple[UpoEntry, ...]


def _text(element: Any, name: str) -> str:
    child = element.find(_N + name)
    return (child.text or "").strip() if child is not None else ""


def parse_upo(content: bytes) -> UpoDocument:
    """Entries of one UPO page (streamed: a 10,000-invoice page stays cheap)."""
    session_ref = ""
    entries: list[UpoEntry] = []
    try:
        for _, element in etree.iterparse(io.BytesIO(content), events=("end",),
                                          resolve_entities=False, no_network=True):
            if element.tag == _N + "NumerReferencyjnySesji":
                session_ref = (element.text or "").strip()
            elif element.tag == _N + "Dokument":
                entries.append(UpoEntry(
                    seller_nip=_text(element, "NipSprzedawcy"),
                    ksef_number=_text(element, "NumerKSeFDokumentu"),
                    invoice_number=_text(element, "NumerFaktury"),
                    issue_date=_text(element, "DataWystawieniaFaktury"),
                    invoicing_date=_text(element, "DataPrzeslaniaDokumentu"),
                    acquisition_date=_text(element, "DataNadaniaNumeruKSeF"),
                    invoice_hash=_text(element, "SkrotDokumentu"),
                    invoicing_mode=_text(element, "TrybWysylki"),
                ))
                element.clear()
    except etree.XMLSyntaxError as exc:
        raise UpoError(f"UPO is not well-formed XML: {exc}") from exc
    if not session_ref:
        raise UpoError("UPO names no session (NumerReferencyjnySesji missing)")
    return UpoDocument(session_ref, tuple(entries))
