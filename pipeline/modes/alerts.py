"""`ksef.alerts` records raised by the mode-state stream (ids are stable, so a consumer
can tell a repeat from news)."""

from __future__ import annotations

import datetime as dt

from pipeline.modes.messages import KSEF_UNREACHABLE, LATARNIA_UNREACHABLE, is_observation
from pipeline.modes.risk import Risk
from topics.records import Alert, Announcement

INFO = "info"
WARNING = "warning"
CRITICAL = "critical"


def _at(now: dt.datetime) -> str:
    return now.isoformat(timespec="seconds")


def for_risk(risk: Risk, now: dt.datetime, sample: list[str]) -> Alert:
    return Alert(
        alert_id=risk.alert_id, kind=risk.kind,
        severity=CRITICAL if risk.kind == "deadline-passed" else WARNING,
        message=risk.message(), at=_at(now), seller_nip=risk.seller_nip,
        invoice_id=sample[0] if len(sample) == 1 else None,
        details={"deadline": risk.due.isoformat(), "count": risk.count,
                 "backlog": risk.backlog, "per_hour": round(risk.per_hour, 1),
                 "hours_left": round(risk.hours_left, 2), "sample_invoice_ids": sample})


def _window_text(record: Announcement) -> str:
    end = f"until {record.end}" if record.end else "with no announced end yet"
    return f"from {record.start} {end}"


def for_announcement(record: Announcement, now: dt.datetime,
                     announced_in_force: bool = False) -> Alert | None:
    """The alert a new version of a message deserves (None: not worth one)."""
    if not is_observation(record):
        category = record.category.lower().replace("_", " ")
        severity = WARNING if record.category == "MAINTENANCE" else CRITICAL
        return Alert(
            alert_id=f"announcement:{record.id}:v{record.version}", kind="announcement",
            severity=INFO if record.end else severity, at=_at(now),
            message=(f"{record.source} announcement {record.id} v{record.version}: KSeF "
                     f"{category} {_window_text(record)}; pending deadlines are recomputed"),
            details={"id": record.id, "event_id": record.event_id, "category": record.category,
                     "start": record.start, "end": record.end, "version": record.version,
                     "source": record.source})
    what = {KSEF_UNREACHABLE: "ksef", LATARNIA_UNREACHABLE: "latarnia"}.get(record.category)
    if what is None:
        return None
    if record.end is not None:
        return Alert(alert_id=f"{what}-reachable:{record.id}", kind=f"{what}-reachable",
                     severity=INFO, at=_at(now), details={"episode": record.id},
                     message=f"{what_name(what)} answers again (unreachable {record.start} to "
                             f"{record.end})")
    if what == "ksef" and announced_in_force:
        return None  # an announced outage explains it; that one has its own alert
    consequence = ("new invoices are issued offline24 until it answers" if what == "ksef"
                   else "KSeF state UNKNOWN (not a failure); outages must be entered by hand "
                        "(ksef-pipeline announce) until Latarnia answers")
    return Alert(alert_id=f"{what}-unreachable:{record.id}", kind=f"{what}-unreachable",
                 severity=CRITICAL if what == "ksef" else WARNING, at=_at(now),
                 message=f"{what_name(what)} unreachable since {record.start} ({record.text}); "
                         f"{consequence}",
                 details={"episode": record.id, "since": record.start})


def what_name(what: str) -> str:
    return {"ksef": "KSeF", "latarnia": "Latarnia"}[what]


def invalid_announcement(key: str, problem: str, now: dt.datetime) -> Alert:
    return Alert(alert_id=f"announcement-invalid:{key}:{_at(now)}", kind="announcement-invalid",
                 severity=WARNING, at=_at(now), details={"key": key},
                 message=f"ignored an unreadable message on ksef.announcements ({key}): {problem}")
