"""What the pipeline routes an invoice by, read from the already-parsed tree.

One pass over the root's children (a few, plus up to 100 Podmiot3) and over the head of
`Fa` (stopping at RodzajFaktury, before the line items) keeps this cheap for large
invoices. Works on any tree: what cannot be read is None.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NamedTuple

from .schema import FA3_NAMESPACE

_NS = f"{{{FA3_NAMESPACE}}}"
_PODMIOT1 = f"{_NS}Podmiot1"
_PODMIOT2 = f"{_NS}Podmiot2"
_PODMIOT3 = f"{_NS}Podmiot3"
_UPOWAZNIONY = f"{_NS}PodmiotUpowazniony"
_FA = f"{_NS}Fa"
_ZALACZNIK = f"{_NS}Zalacznik"
_IDENTIFICATION = f"{_NS}DaneIdentyfikacyjne"
_NIP = f"{_NS}NIP"
_IDWEW = f"{_NS}IDWew"
_P_1 = f"{_NS}P_1"
_P_2 = f"{_NS}P_2"
_KIND = f"{_NS}RodzajFaktury"
# RodzajFaktury values (TRodzajFaktury in the FA(3) XSD; a unit test compares the two).
INVOICE_KINDS = ("VAT", "KOR", "ZAL", "ROZ", "UPR", "KOR_ZAL", "KOR_ROZ")
_PARTIES = {
    _PODMIOT1: "/Faktura/Podmiot1",
    _PODMIOT2: "/Faktura/Podmiot2",
    _UPOWAZNIONY: "/Faktura/PodmiotUpowazniony",
}


@dataclass(frozen=True)
class InvoiceFacts:
    """What could be read from the invoice; fields are None when unreadable."""

    seller_nip: str | None
    buyer_nip: str | None
    invoice_number: str | None
    issue_date: dt.date | None
    kind: str | None
    has_attachments: bool
    size: int
    sha256_b64: str


class NipField(NamedTuple):
    """A NIP KSeF checksums: `value` is the NIP itself (for IDWew, its first ten digits).

    The element is kept so that its line is looked up only when the NIP is wrong.
    """

    path: str
    value: str
    element: Any

    @property
    def line(self) -> int | None:
        line: int | None = self.element.sourceline
        return line


def unread_facts(size: int, sha256_b64: str) -> InvoiceFacts:
    """Facts of a document that could not be parsed."""
    return InvoiceFacts(None, None, None, None, None, False, size, sha256_b64)


def _text(element: Any) -> str | None:
    if element is None or element.text is None:
        return None
    return " ".join(element.text.split()) or None


def _date(text: str | None) -> dt.date | None:
    if text is None or len(text) != 10:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def read_invoice(root: Any, size: int, sha256_b64: str) -> tuple[InvoiceFacts, list[NipField]]:
    """The facts, and every party NIP that KSeF verifies, in document order.

    The root has a handful of children, so plain iteration is cheapest there; below
    it, lxml's tag-filtered iterators skip unwanted children without making proxies.
    """
    nips: list[NipField] = []
    seller = buyer = number = kind = None
    issue_date = None
    has_attachments = False
    third_parties = 0
    for child in root:
        tag = child.tag
        if tag == _FA:
            number, issue_date, kind = _read_fa(child)
        elif tag == _ZALACZNIK:
            has_attachments = True
        elif tag == _PODMIOT3:
            third_parties += 1
            nips.extend(_party_nips(child, f"/Faktura/Podmiot3[{third_parties}]"))
        elif tag in _PARTIES:
            found = _party_nips(child, _PARTIES[tag])
            nips.extend(found)
            value = found[0].value if found else None
            if tag == _PODMIOT1:
                seller = value
            elif tag == _PODMIOT2:
                buyer = value
    facts = InvoiceFacts(seller, buyer, number, issue_date, kind, has_attachments, size, sha256_b64)
    return facts, nips


def _read_fa(fa: Any) -> tuple[str | None, dt.date | None, str | None]:
    number = issue = None
    for child in fa.iterchildren(_P_1, _P_2, _KIND):  # matched in C: no proxies for the rest
        tag = child.tag
        if tag == _P_1:
            issue = _date(_text(child))
        elif tag == _P_2:
            number = _text(child)
        else:
            return number, issue, _text(child)
    return number, issue, None


def _party_nips(party: Any, path: str) -> list[NipField]:
    found: list[NipField] = []
    for ident in party.iterchildren(_IDENTIFICATION):
        for element in ident.iterchildren(_NIP, _IDWEW):
            value = _text(element)
            if value is None:
                continue
            if element.tag == _NIP:
                found.append(NipField(path + "/DaneIdentyfikacyjne/NIP", value, element))
            else:
                nip = value.split("-", 1)[0]
                found.append(NipField(path + "/DaneIdentyfikacyjne/IDWew", nip, element))
        break
    return found
