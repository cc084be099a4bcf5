"""Latarnia KSeF: the public availability feed (`/status`, `/messages`).

An operator announces an event (failure, total failure or maintenance) and later ends
it. Every change is published as a new version of the same message id, the way MF
updates a message when an end time becomes known; ending a failure also publishes a
separate FAILURE_END message for the same event.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pipeline.emulator.store import Row, Store
from pipeline.emulator.timefmt import iso, parse, utcnow

FAILURE = "FAILURE"
TOTAL_FAILURE = "TOTAL_FAILURE"
MAINTENANCE = "MAINTENANCE"
CATEGORIES = (FAILURE, TOTAL_FAILURE, MAINTENANCE)
FAILURE_START = "FAILURE_START"
FAILURE_END = "FAILURE_END"
MAINTENANCE_ANNOUNCEMENT = "MAINTENANCE_ANNOUNCEMENT"
AVAILABLE = "AVAILABLE"

_DEFAULT_TITLES = {
    FAILURE: "Awaria KSeF",
    TOTAL_FAILURE: "Awaria całkowita KSeF",
    MAINTENANCE: "Planowana niedostępność KSeF",
}


def message_json(row: Row) -> dict[str, Any]:
    return {"id": row["id"], "eventId": row["event_id"], "category": row["category"],
            "type": row["type"], "title": row["title"], "text": row["text"],
            "start": row["start"], "end": row["end"], "version": row["version"],
            "published": row["published"]}


@dataclass
class Latarnia:
    store: Store

    def announce(self, category: str, *, start: dt.datetime | None = None,
                 end: dt.datetime | None = None, title: str | None = None,
                 text: str | None = None, message_id: str | None = None) -> Row:
        """Publish a new event, or a new version of message `message_id` when given."""
        now = utcnow()
        if message_id is not None:
            return self._revise(message_id, now, start=start, end=end, title=title, text=text)
        if category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, not {category!r}")
        event = self.store.max_event_id() + 1
        kind = MAINTENANCE_ANNOUNCEMENT if category == MAINTENANCE else FAILURE_START
        suffix = "maintenance" if category == MAINTENANCE else "start"
        row = {
            "id": f"{event}-{suffix}", "version": 1, "event_id": event, "category": category,
            "type": kind, "title": title or _DEFAULT_TITLES[category],
            "text": text or _DEFAULT_TITLES[category],
            "start": iso(start or now), "end": iso(end) if end else None,
            "published": iso(now),
        }
        self.store.add_message(row)
        return row

    def end(self, ref: str, at: dt.datetime | None = None) -> list[Row]:
        """End an event (given its event id or any of its message ids)."""
        now = utcnow()
        ended = at or now
        event_msgs = [m for m in self.store.latest_messages()
                      if str(m["event_id"]) == ref or m["id"] == ref]
        if not event_msgs:
            raise KeyError(f"no Latarnia event or message {ref!r}")
        event_id = event_msgs[0]["event_id"]
        first = next(m for m in self.store.latest_messages()
                     if m["event_id"] == event_id and m["type"] != FAILURE_END)
        published = [self._revise(first["id"], now, end=ended)]
        if first["category"] != MAINTENANCE:
            end_id = f"{event_id}-end"
            previous = self.store.message_versions(end_id)
            row = {**first, "id": end_id, "type": FAILURE_END,
                   "version": previous[-1]["version"] + 1 if previous else 1,
                   "title": f"Koniec: {first['title']}", "end": iso(ended),
                   "published": iso(now)}
            self.store.add_message(row)
            published.append(row)
        return published

    def _revise(self, message_id: str, now: dt.datetime, **changes: Any) -> Row:
        versions = self.store.message_versions(message_id)
        if not versions:
            raise KeyError(f"no Latarnia message {message_id!r}")
        row = dict(versions[-1])
        for name, value in changes.items():
            if value is None:
                continue
            row[name] = iso(value) if isinstance(value, dt.datetime) else value
        row["version"] += 1
        row["published"] = iso(now)
        self.store.add_message(row)
        return row

    def messages(self) -> list[dict[str, Any]]:
        return [message_json(m) for m in self.store.latest_messages()]

    def status(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """Current availability and the messages that explain it (active or upcoming)."""
        moment = now or utcnow()
        latest = self.store.latest_messages()
        ended_events = {m["event_id"] for m in latest
                        if m["type"] == FAILURE_END and parse(m["end"] or m["start"]) <= moment}
        active: list[Row] = []
        relevant: list[Row] = []
        for msg in latest:
            if msg["type"] == FAILURE_END or msg["event_id"] in ended_events:
                continue
            start = parse(msg["start"])
            end = parse(msg["end"]) if msg["end"] else None
            if end is not None and end <= moment:
                continue
            relevant.append(msg)
            if start <= moment:
                active.append(msg)
        categories = {m["category"] for m in active}
        state = next((c for c in (TOTAL_FAILURE, FAILURE, MAINTENANCE) if c in categories),
                     AVAILABLE)
        return {"status": state, "messages": [message_json(m) for m in relevant]}
