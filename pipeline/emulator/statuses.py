"""Session status codes and their descriptions (KSeF's state diagrams)."""

from __future__ import annotations

ONLINE = "Online"
BATCH = "Batch"

OPEN = 100
PROCESSING = 150
CLOSED = 170
SUCCEEDED = 200
PACKAGE_INVALID = 405
KEY_FAILED = 415
TOO_MANY_INVOICES = 420
DECOMPRESSION_FAILED = 430
PART_DECRYPTION_FAILED = 435
CANCELLED = 440
NONE_ACCEPTED = 445
UNKNOWN = 500

_BATCH = {
    OPEN: "Sesja wsadowa rozpoczęta",
    PROCESSING: "Trwa przetwarzanie",
    SUCCEEDED: "Sesja wsadowa przetworzona pomyślnie",
    PACKAGE_INVALID: "Błąd weryfikacji poprawności dostarczonych elementów paczki",
    KEY_FAILED: "Błąd odszyfrowania dostarczonego klucza",
    TOO_MANY_INVOICES: "Przekroczony limit faktur w sesji",
    DECOMPRESSION_FAILED: "Błąd dekompresji pierwotnego archiwum",
    PART_DECRYPTION_FAILED: "Błąd odszyfrowania zaszyfrowanych części archiwum",
    CANCELLED: "Sesja anulowana",
    NONE_ACCEPTED: "Błąd weryfikacji, brak poprawnych faktur",
}
_ONLINE = {
    OPEN: "Sesja interaktywna otwarta",
    CLOSED: "Sesja interaktywna zamknięta",
    SUCCEEDED: "Sesja interaktywna przetworzona pomyślnie",
    KEY_FAILED: "Błąd odszyfrowania dostarczonego klucza",
    CANCELLED: "Sesja anulowana",
    NONE_ACCEPTED: "Błąd weryfikacji, brak poprawnych faktur",
}
IN_PROGRESS = (OPEN, PROCESSING, CLOSED)


def describe(kind: str, code: int) -> str:
    table = _BATCH if kind == BATCH else _ONLINE
    return table.get(code, f"Nieznany błąd ({code})")


def common_status(code: int) -> str:
    """KSeF's coarse `CommonSessionStatus` for session list filters."""
    if code in IN_PROGRESS:
        return "InProgress"
    if code == SUCCEEDED:
        return "Succeeded"
    if code == CANCELLED:
        return "Cancelled"
    return "Failed"
