"""The KSeF state as the pipeline believes it (`ksef.mode`), built from the announcements.

States, strongest first:
- TOTAL_FAILURE / FAILURE / MAINTENANCE: an announced window is in force now;
- OBSERVED_OUTAGE: nothing announced, but KSeF has been failing our own requests for
  longer than the threshold (new invoices go offline24, an alert is raised);
- UNKNOWN: nothing announced that we know of, and Latarnia does not answer. Not a
  failure: invoices keep their normal modes, operators are warned;
- AVAILABLE.

Everything here is pure; the mode-state agent (`pipeline.modes.state`) owns the inputs
and publishes the result, and every stage reads it back through `follow.ModeFollower`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from pipeline.ksef.announcements import AnnouncementHistory, Category, Window, parse_time
from pipeline.modes.messages import (
    KSEF_UNREACHABLE,
    LATARNIA_UNREACHABLE,
    is_observation,
    iso,
    to_message,
)
from topics.records import Announcement, ModeState, ModeWindow

AVAILABLE = "AVAILABLE"
MAINTENANCE = "MAINTENANCE"
FAILURE = "FAILURE"
TOTAL_FAILURE = "TOTAL_FAILURE"
OBSERVED_OUTAGE = "OBSERVED_OUTAGE"
UNKNOWN = "UNKNOWN"
ANNOUNCED_STATES = (TOTAL_FAILURE, FAILURE, MAINTENANCE)
KEEP_ENDED_OBSERVATIONS = 20  # older ended observation episodes drop out of ksef.mode

_DESCRIBE = {
    Category.TOTAL_FAILURE: "total failure",
    Category.FAILURE: "failure",
    Category.MAINTENANCE: "maintenance",
}


def history_from_mode_state(state: ModeState | None) -> AnnouncementHistory:
    """The rules core's announcement history carried by a `ksef.mode` record."""
    if state is None:
        return AnnouncementHistory()
    return history_of(state.announcements)


def history_of(records: Iterable[Announcement]) -> AnnouncementHistory:
    return AnnouncementHistory(to_message(r) for r in records if not is_observation(r))


def should_hold_sessions(state: ModeState | None, *, include_observed: bool = False) -> bool:
    """True while the submitter should open no new session and only probe KSeF.

    An announced failure, total failure or maintenance in force holds; with
    `include_observed` so does an outage the pipeline only saw itself.
    """
    if state is None:
        return False
    if state.state in ANNOUNCED_STATES:
        return True
    return include_observed and state.state == OBSERVED_OUTAGE


def legal_content(state: ModeState | None) -> tuple[Announcement, ...]:
    """What deadlines depend on: the legal announcements only (order-independent)."""
    if state is None:
        return ()
    return tuple(sorted((a for a in state.announcements if not is_observation(a)),
                        key=lambda a: a.id))


def same_state(a: ModeState | None, b: ModeState | None) -> bool:
    """Equal apart from the time it was computed."""
    if a is None or b is None:
        return a is b
    return dataclasses.replace(a, updated_at="") == dataclasses.replace(b, updated_at="")


def _open_observation(records: list[Announcement], category: str) -> Announcement | None:
    found = [r for r in records if r.category == category and r.end is None]
    return min(found, key=lambda r: parse_time(r.start)) if found else None


def _observed_windows(records: list[Announcement]) -> list[ModeWindow]:
    ended = sorted((r for r in records if r.end is not None), key=lambda r: parse_time(r.start))
    kept = ended[-KEEP_ENDED_OBSERVATIONS:] + [r for r in records if r.end is None]
    return [ModeWindow(category=r.category, start=r.start, end=r.end, event_id=r.event_id,
                       announced=r.first_published or r.published, source="observed")
            for r in kept]


def _window(w: Window) -> ModeWindow:
    return ModeWindow(category=w.category.value, start=iso(w.start),
                      end=None if w.end is None else iso(w.end), event_id=w.event_id,
                      announced=iso(w.announced))


def kept_observations(records: Iterable[Announcement]) -> list[Announcement]:
    """Observation records worth keeping: open ones and the latest ended episodes."""
    observed = [r for r in records if is_observation(r)]
    keep = {w.event_id for w in _observed_windows(observed)}
    return [r for r in observed if r.event_id in keep]


def build_mode_state(records: Iterable[Announcement], now: dt.datetime,
                     previous: ModeState | None = None) -> ModeState:
    """The state at `now` from the latest version of every message on the topic."""
    records = list(records)
    legal = sorted((r for r in records if not is_observation(r)), key=lambda r: r.id)
    observed = kept_observations(records)
    history = history_of(legal)
    in_force = history.in_force_at(now)
    ksef_down = _open_observation(observed, KSEF_UNREACHABLE)
    latarnia_down = _open_observation(observed, LATARNIA_UNREACHABLE)
    announced = next((c for c in (Category.TOTAL_FAILURE, Category.FAILURE,
                                  Category.MAINTENANCE)
                      if any(w.category is c for w in in_force)), None)
    if announced is not None:
        governing = [w for w in in_force if w.category is announced]
        state, since = announced.value, iso(min(w.start for w in governing))
        ends = [w.end for w in governing]
        until = "no announced end" if None in ends else \
            f"until {iso(max(e for e in ends if e is not None))}"
        reason = (f"announced {_DESCRIBE[announced]} "
                  f"{', '.join(sorted(w.event_id for w in governing))} in force, {until}")
    elif ksef_down is not None:
        state, since = OBSERVED_OUTAGE, ksef_down.start
        reason = (f"KSeF has been failing our requests since {ksef_down.start} with no "
                  f"announcement: new invoices are issued offline24")
    elif latarnia_down is not None:
        state, since = UNKNOWN, latarnia_down.start
        reason = (f"Latarnia has not answered since {latarnia_down.start}: KSeF's state is "
                  f"unknown (not a failure); new invoices keep their normal modes")
    else:
        state = AVAILABLE
        same = previous is not None and previous.state == AVAILABLE
        since = previous.since if same and previous is not None else iso(now)
        reason = "no announced outage in force"
    if announced is not None and latarnia_down is not None:
        reason += f"; Latarnia has not answered since {latarnia_down.start}"
    windows = [_window(w) for w in history.windows] + _observed_windows(observed)
    windows.sort(key=lambda w: (parse_time(w.start), w.event_id))
    return ModeState(
        state=state, since=since, updated_at=iso(now), windows=windows, reason=reason,
        ksef_reachable=ksef_down is None, latarnia_reachable=latarnia_down is None,
        announcements=[*legal, *sorted(observed, key=lambda r: r.id)],
    )
