"""When an invoice must be in KSeF: the statutory deadline under outages.

Sources: art. 106nda (offline24), 106nh (offline, announced unavailability), 106nf
(emergency, announced failure) of the VAT act and the MF guide `tryby-offline.md`.
Every date is a Polish calendar date (see `announcements.polish_date`); "n business
days after day X" counts from the day after X (`calendar.add_business_days`).

Decision procedure of `compute_deadline(issued, mode, history)`:

1. total_failure: exempt, nothing ever has to be sent.
2. Base deadline D from the mode's own window:
   - online: the issue day itself (P_1 = acceptance day); its window is that one day, so
     only a failure or total failure announced (or in force) on it changes anything.
   - offline24: the next business day after the issue day.
   - offline: the announced unavailability (MAINTENANCE window) covering the issue day,
     extended through maintenance windows that start before the previous one ends
     (one continuous unavailability); D = next business day after its end day. No end
     announced -> open.
   - emergency: the announced failure(s) covering the issue day; D = 7 business days
     after the latest end day. A covering failure without an end -> open.
   - offline/emergency with no covering window: the governing window is unknown; the
     deadline stays open unless step 3 finds a failure that sets it.
3. Later events, each failure or total failure window W considered only if
   (a) it concerns the invoice: W is in force on or after the issue day, or W was
       announced on or after the issue day (when the base is unknown, only the former),
   (b) it came out in time: W's announcement day <= D as it stood then (inclusive; an
       open deadline accepts any announcement). An announcement made after the
       deadline had passed changes nothing.
   Walking the windows in order of announcement (those announced before the issue day,
   i.e. already in force, first):
   - total failure -> exempt (the obligation is lifted whatever else happened);
   - failure without an announced end -> open (keep walking: a total failure announced
     later still exempts);
   - failure with an end -> D = max(D, 7 business days after its end day). For
     offline24/offline this moves the deadline to 7 business days after the (last)
     failure; in the emergency 7-day window it restarts the count from the new end.
     Taking the maximum means no announcement ever shortens a deadline.
   Because D only grows and a window is admitted only when announced by the current D,
   one pass in announcement order gives the fixed point.
4. The result carries the status (due/open/exempt), the date (due only), the mode and
   the rule that decided it, in words.

`auto` (`resolve_mode` / `deadline_for`) first takes the mode from the windows in force
on the issue day (`modes.derive_mode`: total failure > failure > maintenance >
offline24; a window counts once announced and if it touches that Polish day at all),
then applies the procedure above; the Deadline reports the derived mode.

Readings of the law chosen here, where the text leaves room:
- "In force on the issue day" is judged by Polish days, since P_1 carries no time: a
  failure that ended on the morning of P_1 still governs that day's invoices.
- A failure announced before the issue day and still in force on it counts like one
  announced inside the window (the taxpayer could not send while it lasted).
- Maintenance announced during an offline24 window does not move it: the act extends
  deadlines only for failures.
- "Announced" is the earliest publication of any version of the window's messages, so
  a later version that adds or moves the end keeps the original announcement day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain
from typing import Any

from pipeline.ksef.announcements import AnnouncementHistory, Category, Window, polish_date
from pipeline.ksef.calendar import add_business_days, next_business_day
from pipeline.ksef.modes import Mode, derive_mode

EMERGENCY_BUSINESS_DAYS = 7
AUTO = "auto"


class Status(StrEnum):
    DUE = "due"
    OPEN = "open"
    EXEMPT = "exempt"


@dataclass(frozen=True, slots=True)
class Deadline:
    """A submission deadline: `due` is set only when status is DUE."""

    status: Status
    due: dt.date | None
    mode: Mode
    basis: str

    def as_dict(self) -> dict[str, str | None]:
        """The CLI / topic shape: deadline, status, mode, basis."""
        return {
            "deadline": None if self.due is None else self.due.isoformat(),
            "status": self.status.value,
            "mode": self.mode.value,
            "basis": self.basis,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Deadline:
        """Inverse of `as_dict` (e.g. for a `ksef.deadlines` record read back)."""
        deadline = raw.get("deadline")
        return cls(
            Status(raw["status"]),
            None if deadline is None else dt.date.fromisoformat(str(deadline)),
            Mode(raw["mode"]),
            str(raw.get("basis", "")),
        )


_OUTAGES = (Category.FAILURE, Category.TOTAL_FAILURE)


def _after_failure(window: Window) -> dt.date:
    assert window.end_day is not None
    return add_business_days(window.end_day, EMERGENCY_BUSINESS_DAYS)


def _extension_basis(window: Window) -> str:
    return (
        f"{window.describe()} announced {window.announced_day}: {EMERGENCY_BUSINESS_DAYS} "
        f"business days after it ended {window.end_day}"
    )


class _Walk:
    """Mutable state of steps 2-3 for one (issue day, mode).

    The rule behind the current deadline is kept as text or as the failure window that
    set it; the window is put into words only once, at the end.
    """

    __slots__ = ("basis", "due", "issued", "open_basis")

    def __init__(self, issued: dt.date) -> None:
        self.issued = issued
        self.due: dt.date | None = None  # the finite deadline found so far
        self.basis: str | Window = ""
        self.open_basis: str | None = None  # set when an end-less window governs

    def extend(self, day: dt.date, basis: str | Window) -> None:
        if self.due is None or day > self.due:
            self.due, self.basis = day, basis

    def limit(self) -> dt.date:
        """Latest announcement day that still counts."""
        if self.open_basis is not None or self.due is None:
            return dt.date.max
        return self.due

    def basis_text(self) -> str:
        return self.basis if isinstance(self.basis, str) else _extension_basis(self.basis)


def _maintenance_base(issued: dt.date, history: AnnouncementHistory, walk: _Walk) -> bool:
    joined = [w for w in history.covering(issued) if w.category is Category.MAINTENANCE]
    if not joined:
        return False
    ends = [w.end for w in joined]
    end = None if None in ends else max(e for e in ends if e is not None)
    earliest = min(w.start for w in joined)
    for w in history.maintenance_from(earliest):  # one continuous unavailability
        if end is None or w.start > end:
            break
        if w not in joined:
            joined.append(w)
            end = None if w.end is None else max(end, w.end)
    label = "unavailability " + ", ".join(sorted(w.event_id for w in joined))
    if end is None:
        walk.open_basis = f"offline: {label} covering {issued} has no announced end"
        return True
    end_day = polish_date(end)
    walk.extend(
        next_business_day(end_day), f"offline: next business day after {label} ended {end_day}"
    )
    return True


def _failure_base(issued: dt.date, history: AnnouncementHistory, walk: _Walk) -> bool:
    covering = [w for w in history.covering(issued) if w.category is Category.FAILURE]
    for w in covering:
        if w.end_day is None:
            walk.open_basis = f"emergency: {w.describe()} covering {issued} has no announced end"
        else:
            walk.extend(
                _after_failure(w),
                f"emergency: {EMERGENCY_BUSINESS_DAYS} business days after "
                f"{w.describe()} ended {w.end_day}",
            )
    return bool(covering)


def _already_in_force(issued: dt.date, history: AnnouncementHistory) -> list[Window]:
    """Failures and total failures announced before the issue day and not over by it."""
    found = [
        w for w in history.covering(issued) if w.category in _OUTAGES and w.announced_day < issued
    ]
    found += [
        w
        for w in history.outages_announced_before_start()
        if w.announced_day < issued < w.start_day
    ]
    found.sort(key=lambda w: (w.announced, w.event_id))
    return found


def _later_events(walk: _Walk, history: AnnouncementHistory, base_known: bool) -> str | None:
    """Step 3. Returns an exemption basis (str) or None; updates `walk` in place."""
    issued = walk.issued
    for w in chain(_already_in_force(issued, history), history.announced_from(issued)):
        if w.category not in _OUTAGES:
            continue
        if w.announced_day > walk.limit():
            break
        if not base_known and w.end_day is not None and w.end_day < issued:
            continue
        if w.category is Category.TOTAL_FAILURE:
            return f"exempt: {w.describe()} announced {w.announced_day} lifts the duty to send"
        if w.end_day is None:
            if walk.open_basis is None:
                walk.open_basis = (
                    f"open: {w.describe()} announced {w.announced_day} has no announced end"
                )
            continue
        walk.extend(_after_failure(w), w)
    return None


def compute_deadline(issued: dt.date, mode: Mode, history: AnnouncementHistory) -> Deadline:
    """The deadline of an invoice with issue date (P_1) `issued` issued in `mode`."""
    if mode is Mode.TOTAL_FAILURE:
        return Deadline(Status.EXEMPT, None, mode, "total failure: no duty to send to KSeF")
    walk = _Walk(issued)
    if mode is Mode.ONLINE:
        walk.extend(issued, "online: due on the issue date")
        base_known = True
    elif mode is Mode.OFFLINE24:
        walk.extend(next_business_day(issued), f"offline24: next business day after {issued}")
        base_known = True
    elif mode is Mode.OFFLINE:
        base_known = _maintenance_base(issued, history, walk)
    else:
        base_known = _failure_base(issued, history, walk)
    exemption = _later_events(walk, history, base_known)
    if isinstance(exemption, str):
        return Deadline(Status.EXEMPT, None, mode, exemption)
    if walk.open_basis is not None:
        return Deadline(Status.OPEN, None, mode, walk.open_basis)
    if walk.due is None:
        kind = "unavailability" if mode is Mode.OFFLINE else "failure"
        return Deadline(
            Status.OPEN, None, mode, f"{mode.value}: no announced {kind} covers {issued} yet"
        )
    return Deadline(Status.DUE, walk.due, mode, walk.basis_text())


def resolve_mode(name: str, issued: dt.date, history: AnnouncementHistory) -> Mode:
    """A mode name as operators type it; `auto` derives it from the announcements."""
    if name == AUTO:
        return derive_mode(issued, history)
    try:
        return Mode(name)
    except ValueError:
        allowed = ", ".join([*(m.value for m in Mode), AUTO])
        raise ValueError(f"unknown mode {name!r}; expected one of {allowed}") from None


def deadline_for(issued: dt.date, mode: str, history: AnnouncementHistory) -> Deadline:
    """`compute_deadline` for a mode name, `auto` included."""
    return compute_deadline(issued, resolve_mode(mode, issued, history), history)
