"""Reading a KSeF UPO (official receipt, schema upo-v4-3): which invoices KSeF accepted.

A session UPO page lists up to 10,000 accepted invoices with KSeF number and hash, so one
download settles a whole batch; paging per-invoice results instead would take ten
requests per batch against a limit of 20 a minute.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
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
    """The whole UPO page: its session and every entry."""
    session_ref = ""
    entries: list[UpoEntry] = []
    for item in _walk(content):
        if isinstance(item, UpoEntry):
            entries.append(item)
        else:
            session_ref = item
    return UpoDocument(_named(session_ref), tuple(entries))


def upo_entries(content: bytes) -> Iterator[UpoEntry]:
    """The entries of one UPO page one at a time, for a reader that keeps only part of
    each (10,000 `UpoEntry`s are ~9 MB); UpoError, possibly after some entries, when
    the page is not a UPO we can read."""
    session_ref = ""
    for item in _walk(content):
        if isinstance(item, UpoEntry):
            yield item
        else:
            session_ref = item
    _named(session_ref)


def _walk(content: bytes) -> Iterator[UpoEntry | str]:
    """The page streamed (iterparse, each `Dokument` cleared once read): its session
    reference (a str) and its entries, in document order."""
    try:
        for _, element in etree.iterparse(io.BytesIO(content), events=("end",),
                                          resolve_entities=False, no_network=True):
            if element.tag == _N + "NumerReferencyjnySesji":
                yield (element.text or "").strip()
            elif element.tag == _N + "Dokument":
                yield _entry(element)
                element.clear()
    except etree.XMLSyntaxError as exc:
        raise UpoError(f"UPO is not well-formed XML: {exc}") from exc


def _named(session_ref: str) -> str:
    if not session_ref:
        raise UpoError("UPO names no session (NumerReferencyjnySesji missing)")
    return session_ref


def _entry(element: Any) -> UpoEntry:
    return UpoEntry(
        seller_nip=_text(element, "NipSprzedawcy"),
        ksef_number=_text(element, "NumerKSeFDokumentu"),
        invoice_number=_text(element, "NumerFaktury"),
        issue_date=_text(element, "DataWystawieniaFaktury"),
        invoicing_date=_text(element, "DataPrzeslaniaDokumentu"),
        acquisition_date=_text(element, "DataNadaniaNumeruKSeF"),
        invoice_hash=_text(element, "SkrotDokumentu"),
        invoicing_mode=_text(element, "TrybWysylki"),
    )
