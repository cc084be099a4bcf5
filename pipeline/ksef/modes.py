"""Issuing modes and how the announcements in force choose one.

Precedence when several windows are in force: total failure > failure (emergency) >
maintenance (offline) > nothing announced (offline24, or online for an invoice that can
still reach KSeF on its issue day). Only windows already announced count: a failure
published on Thursday did not put Wednesday's invoices into emergency mode (they were
offline24, and the failure then extends their deadline if it came out in time).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pipeline.ksef.announcements import AnnouncementHistory, Category, Window, polish_date


class Mode(StrEnum):
    ONLINE = "online"
    OFFLINE24 = "offline24"
    OFFLINE = "offline"  # announced unavailability (maintenance)
    EMERGENCY = "emergency"  # announced failure (tryb awaryjny)
    TOTAL_FAILURE = "total_failure"  # announced in mass media: no duty to send

    @property
    def is_offline(self) -> bool:
        """Sent after the fact with `offlineMode: true` (and printed with KOD II)."""
        return self in (Mode.OFFLINE24, Mode.OFFLINE, Mode.EMERGENCY)


_PRECEDENCE = (
    (Category.TOTAL_FAILURE, Mode.TOTAL_FAILURE),
    (Category.FAILURE, Mode.EMERGENCY),
    (Category.MAINTENANCE, Mode.OFFLINE),
)


def _strongest(windows: list[Window]) -> Mode:
    categories = {w.category for w in windows}
    return next((mode for cat, mode in _PRECEDENCE if cat in categories), Mode.OFFLINE24)


def derive_mode(issued_at: dt.datetime | dt.date, history: AnnouncementHistory) -> Mode:
    """The mode the announcements in force impose at a moment or on a Polish day.

    Never ONLINE: without an announced window the answer is OFFLINE24, the mode that is
    always allowed. With a date, a window counts if it touches that day at all.
    """
    if isinstance(issued_at, dt.datetime):
        return _strongest(history.in_force_at(issued_at))
    return _strongest(history.in_force_on(issued_at))


def mode_for_new_invoice(
    issued: dt.date,
    now: dt.datetime,
    history: AnnouncementHistory,
    ksef_reachable: bool = True,
) -> Mode:
    """The mode to stamp on an invoice entering the pipeline at `now` (aware datetime).

    An invoice dated today (or later) follows what is in force right now and is ONLINE
    when nothing is announced and KSeF answers. One dated earlier missed its online day:
    it takes the mode in force on its issue date, OFFLINE24 when nothing was.
    """
    if issued >= polish_date(now):
        mode = derive_mode(now, history)
        if mode is Mode.OFFLINE24 and ksef_reachable:
            return Mode.ONLINE
        return mode
    return derive_mode(issued, history)
