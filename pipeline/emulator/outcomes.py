"""Turning check verdicts into KSeF's per-invoice results.

Here the stateful rules meet: duplicates (seller NIP, RodzajFaktury, P_2) against
everything accepted so far, KSeF numbers, online/offline marking, operator-forced
failures. Callers hold one lock around `decide` + commit, so two sessions can never
both accept the same invoice.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from pipeline.emulator.checks import OK, Verdict
from pipeline.emulator.faults import INVOICE_SCOPE, Faults
from pipeline.emulator.refs import new_ksef_number
from pipeline.emulator.store import Store
from pipeline.emulator.timefmt import iso, parse, polish_day

INVOICE_STATUS = {
    100: "Faktura przyjęta do dalszego przetwarzania",
    150: "Trwa przetwarzanie",
    200: "Sukces",
    405: "Przetwarzanie anulowane z powodu błędu sesji",
    410: "Nieprawidłowy zakres uprawnień",
    415: "Brak możliwości wysyłania faktury z załącznikiem",
    430: "Błąd weryfikacji pliku faktury",
    435: "Błąd odszyfrowania pliku",
    440: "Duplikat faktury",
    450: "Błąd weryfikacji semantyki dokumentu faktury",
    500: "Nieznany błąd (500)",
    550: "Operacja została anulowana przez system",
}
DUPLICATE = 440


def invoice_status_description(code: int) -> str:
    return INVOICE_STATUS.get(code, f"Nieznany błąd ({code})")


@dataclass
class Candidate:
    """One invoice about to be decided; `base` holds its `invoices` columns so far."""

    base: dict[str, Any]
    verdict: Verdict | None
    data: bytes | None
    forced: tuple[int, str] | None = None  # a result known before any check (435, size)


@dataclass
class Outcome:
    row: dict[str, Any]
    blob: bytes | None
    dup_key: tuple[str, str, str] | None


def _mode(base: dict[str, Any], issue_date: dt.date | None) -> str:
    """Offline if declared so, or if P_1 is an earlier Polish day than invoicingDate."""
    if base.get("offline_declared"):
        return "Offline"
    invoicing_day = polish_day(parse(base["invoicing_date"]))
    return "Offline" if issue_date is not None and issue_date < invoicing_day else "Online"


def decide(candidates: list[Candidate], *, store: Store, faults: Faults, channel: int,
           now: dt.datetime) -> list[Outcome]:
    outcomes: list[Outcome] = []
    sequence = store.next_sequence("ksef-number", len(candidates))  # gaps are harmless
    accepted_here: dict[tuple[str, str, str], dict[str, Any]] = {}
    for cand in candidates:
        row = dict(cand.base)
        verdict = cand.verdict
        code, message = cand.forced or ((verdict.code, verdict.message) if verdict else
                                        (500, "no check result"))
        extensions: dict[str, str] | None = None
        dup_key = None
        if verdict is not None:
            row.update(invoice_number=verdict.invoice_number, seller_nip=verdict.seller_nip,
                       buyer_nip=verdict.buyer_nip, kind=verdict.kind,
                       issue_date=verdict.issue_date.isoformat() if verdict.issue_date else None,
                       invoice_hash=verdict.sha256_b64, size=verdict.size,
                       invoicing_mode=_mode(row, verdict.issue_date))
        if code == OK:
            forced = faults.take(INVOICE_SCOPE)
            if forced is not None:
                code, message = forced, "failure forced by the emulator operator"
        if code == OK and verdict is not None:
            key = (verdict.seller_nip or "", verdict.kind or "", verdict.invoice_number or "")
            original = accepted_here.get(key) or store.find_duplicate(*key)
            if original is not None:
                code = DUPLICATE
                message = (f"Duplikat faktury. Faktura o numerze KSeF: {original['ksef_number']} "
                           f"została już prawidłowo przesłana do systemu w sesji: "
                           f"{original['session']}")
                extensions = {"originalSessionReferenceNumber": original["session"],
                              "originalKsefNumber": original["ksef_number"]}
            else:
                dup_key = key
                accepted_here[key] = row
                _accept(row, channel, sequence, now)
                sequence += 1
        row.update(status_code=code, status_description=invoice_status_description(code),
                   status_details=json.dumps([message]) if message else None,
                   extensions=json.dumps(extensions) if extensions else None)
        outcomes.append(Outcome(row, cand.data if code == OK else None, dup_key))
    return outcomes


def _accept(row: dict[str, Any], channel: int, sequence: int, now: dt.datetime) -> None:
    day = polish_day(parse(row["invoicing_date"]))
    row["ksef_number"] = new_ksef_number(row["seller_nip"], day, channel, sequence)
    row["acquisition_date"] = iso(now)
    row["storage_date"] = iso(now + dt.timedelta(milliseconds=1))
