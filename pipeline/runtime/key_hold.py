"""Sealed invoices whose key this worker's keyring lacks: held, not rejected.

A record names the key it was sealed under. When the keyring does not hold that key
(a sealer rotated before this reader re-read the keyring, or a key was removed too
early) the record is fine and the keyring is not, so the invoice waits, unacknowledged,
until the keyring file brings the key (`KeyringSource` re-reads it); then it is packed
as if it had just arrived. One critical alert per missing key id names the key; one info
alert when it turned up. Plain state (no Faust), used by the pack stage (and submit).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from topics.records import Alert

HELD_KIND, FOUND_KIND = "keyring-key-missing", "keyring-key-found"


def _at(now: dt.datetime) -> str:
    return now.isoformat(timespec="seconds")


def missing_key_alert(key_id: str, stage: str, now: dt.datetime, *, invoice_id: str | None,
                      seller_nip: str | None, keyring_ids: Iterable[str]) -> Alert:
    return Alert(
        alert_id=f"{HELD_KIND}:{stage}:{key_id}:{_at(now)}", kind=HELD_KIND,
        severity="critical", at=_at(now), seller_nip=seller_nip, invoice_id=invoice_id,
        message=(f"the {stage} stage meets invoices sealed under key {key_id!r}, which its "
                 "keyring does not hold; they wait (none is rejected) until the key is in "
                 "the keyring file (KSEF_KEYRING_FILE, re-read without a restart): copy the "
                 "keyring the sealers use to every worker"),
        details={"key_id": key_id, "stage": stage, "keyring_keys": sorted(keyring_ids)})


def key_found_alert(key_id: str, stage: str, now: dt.datetime, held: int) -> Alert:
    return Alert(
        alert_id=f"{FOUND_KIND}:{stage}:{key_id}:{_at(now)}", kind=FOUND_KIND,
        severity="info", at=_at(now),
        message=f"key {key_id!r} is in the {stage} stage's keyring now; {held} held "
                "invoice(s) go on",
        details={"key_id": key_id, "stage": stage, "held": held})


class KeyHolds:
    """Events held per missing key id (their payload kept: they are opened again)."""

    def __init__(self) -> None:
        self._held: dict[str, list[Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def __len__(self) -> int:
        return sum(len(v) for v in self._held.values())

    def hold(self, key_id: str, event: Any) -> bool:
        """Keep `event` until `key_id` is known; True when that key was not missing yet
        (the caller alerts once per key)."""
        first = key_id not in self._held
        self._held.setdefault(key_id, []).append(event)
        return first

    def ready(self, key_ids: Iterable[str]) -> list[tuple[str, list[Any]]]:
        """The held events whose key is now among `key_ids`, taken out of the hold."""
        known = set(key_ids)
        return [(k, self._held.pop(k)) for k in list(self._held) if k in known]

    def missing(self) -> list[str]:
        return sorted(self._held)

    def drop(self, partitions: set[tuple[str, int]]) -> int:
        """Forget events of partitions now owned by another worker (it gets them again)."""
        dropped = 0
        for key_id, events in list(self._held.items()):
            kept = [e for e in events
                    if (e.message.topic, e.message.partition) not in partitions]
            dropped += len(events) - len(kept)
            if kept:
                self._held[key_id] = kept
            else:
                del self._held[key_id]
        return dropped
