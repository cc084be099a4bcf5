"""UPO (official receipt) documents, valid against MF's `upo-v4-3.xsd`.

A session UPO lists every accepted invoice with its KSeF number and hash, in pages of at
most 10,000 documents; an invoice UPO is the same document with a single entry. The
emulator does not sign its UPOs (the real ones carry an MF XAdES signature).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from pipeline.emulator.timefmt import iso_warsaw_ms, parse
from pipeline.ksef.numbers import sha256_b64

UPO_NAMESPACE = "http://upo.schematy.mf.gov.pl/KSeF/v4-3"
RECEIVER = "Ministerstwo Finansów"
STRUCTURE = "Schemat_FA(3)_v1-0E.xsd"
_N = f"{{{UPO_NAMESPACE}}}"


def _sub(parent: Any, name: str, text: str | None = None) -> Any:
    element = etree.SubElement(parent, _N + name)
    if text is not None:
        element.text = text
    return element


def render(session: dict[str, Any], invoices: Sequence[dict[str, Any]],
           page: tuple[int, int, int, int] | None = None) -> bytes:
    """UPO for `invoices` of `session`; `page` = (page, pages, first ordinal, total)."""
    root = etree.Element(_N + "Potwierdzenie", nsmap={None: UPO_NAMESPACE})
    _sub(root, "NazwaPodmiotuPrzyjmujacego", RECEIVER)
    _sub(root, "NumerReferencyjnySesji", session["reference"])
    auth = _sub(root, "Uwierzytelnienie")
    _sub(_sub(auth, "IdKontekstu"), "Nip", session["nip"])
    if session.get("token_reference"):
        _sub(auth, "NumerReferencyjnyTokenaKSeF", session["token_reference"])
    else:
        _sub(auth, "SkrotDokumentuUwierzytelniajacego", sha256_b64(session["auth_reference"]
                                                                   .encode("ascii")))
    if page is not None:
        number, pages, first, total = page
        desc = _sub(root, "OpisPotwierdzenia")
        _sub(desc, "Strona", str(number))
        _sub(desc, "LiczbaStron", str(pages))
        _sub(desc, "ZakresDokumentowOd", str(first))
        _sub(desc, "ZakresDokumentowDo", str(first + len(invoices) - 1))  # as MF's samples
        _sub(desc, "CalkowitaLiczbaDokumentow", str(total))
    _sub(root, "NazwaStrukturyLogicznej", STRUCTURE)
    _sub(root, "KodFormularza", "FA (3)")
    for inv in invoices:
        doc = _sub(root, "Dokument")
        _sub(doc, "NipSprzedawcy", inv["seller_nip"])
        _sub(doc, "NumerKSeFDokumentu", inv["ksef_number"])
        _sub(doc, "NumerFaktury", inv["invoice_number"])
        _sub(doc, "DataWystawieniaFaktury", inv["issue_date"])
        _sub(doc, "DataPrzeslaniaDokumentu", iso_warsaw_ms(parse(inv["invoicing_date"])))
        _sub(doc, "DataNadaniaNumeruKSeF", iso_warsaw_ms(parse(inv["acquisition_date"])))
        _sub(doc, "SkrotDokumentu", inv["invoice_hash"])
        _sub(doc, "TrybWysylki", inv["invoicing_mode"])
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return body


def pages(invoices: Sequence[dict[str, Any]], page_size: int,
          ) -> list[tuple[Sequence[dict[str, Any]], tuple[int, int, int, int]]]:
    """Split accepted invoices into UPO pages with their page descriptions."""
    total = len(invoices)
    count = max(1, -(-total // page_size))
    out = []
    for index in range(count):
        chunk = invoices[index * page_size:(index + 1) * page_size]
        out.append((chunk, (index + 1, count, index * page_size + 1, total)))
    return out
