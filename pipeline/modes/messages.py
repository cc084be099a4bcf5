"""`ksef.announcements` records: from Latarnia JSON, from an operator, from our own eyes.

One topic, compacted by message id, carries three sources:
- `latarnia`: MF's messages as the poller read them (new versions replace older ones);
- `operator`: outages entered by hand (BIP, mass media), shaped like Latarnia messages;
- `observed`: what the pipeline saw itself: KSeF failing for longer than a threshold
  (`KSEF_UNREACHABLE`) or Latarnia not answering (`LATARNIA_UNREACHABLE`). These are
  never legal announcements: they only change the state and the mode of new invoices.

Versions: the highest `version` of an id wins (on a tie the later `published`), and the
earliest publication of any version travels along as `first_published`, so a compacted
topic still knows the day a failure was first announced.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.ksef.announcements import (
    AnnouncementError,
    Category,
    Message,
    MessageType,
    parse_time,
)
from topics.records import Announcement

LATARNIA = "latarnia"
OPERATOR = "operator"
OBSERVED = "observed"
KSEF_UNREACHABLE = "KSEF_UNREACHABLE"
LATARNIA_UNREACHABLE = "LATARNIA_UNREACHABLE"
OBSERVED_CATEGORIES = (KSEF_UNREACHABLE, LATARNIA_UNREACHABLE)

# operator command word -> (category, opening message type)
OPERATOR_KINDS: dict[str, tuple[Category, MessageType]] = {
    "failure": (Category.FAILURE, MessageType.FAILURE_START),
    "maintenance": (Category.MAINTENANCE, MessageType.MAINTENANCE_ANNOUNCEMENT),
    "total-failure": (Category.TOTAL_FAILURE, MessageType.FAILURE_START),
}


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def is_observation(record: Announcement) -> bool:
    return record.source == OBSERVED


def to_message(record: Announcement) -> Message:
    """The rules core's view of a legal announcement (raises AnnouncementError)."""
    return Message.from_json({
        "id": record.id, "eventId": record.event_id, "category": record.category,
        "type": record.type, "start": record.start, "end": record.end,
        "version": record.version, "published": record.published, "title": record.title,
        "text": record.text, "firstPublished": record.first_published,
    })


def from_latarnia(raw: Mapping[str, Any], source: str = LATARNIA) -> Announcement:
    """A Latarnia message (JSON object) as a topic record; checked by the rules core."""
    message = Message.from_json(raw)
    start = message.start or message.end or message.published
    assert start is not None  # Message.from_json guarantees one of them
    published = message.published or start
    return Announcement(
        id=message.id, event_id=message.event_id, category=message.category.value,
        type=message.type.value, start=iso(start), version=message.version,
        published=iso(published), source=source, title=message.title, text=message.text,
        end=None if message.end is None else iso(message.end),
        first_published=None if message.first_published is None
        else iso(message.first_published),
    )


def _moment(value: str | None) -> dt.datetime | None:
    return None if value is None else parse_time(value)


def first_published(record: Announcement) -> str:
    return record.first_published or record.published


def newer(incoming: Announcement, stored: Announcement | None) -> Announcement | None:
    """The record to keep when `incoming` arrives over `stored` (None: nothing changes).

    A newer version replaces the stored one; an older version or a replay changes
    nothing, except that the earliest publication seen for the id is always kept.
    """
    if stored is None:
        return dataclasses.replace(incoming, first_published=first_published(incoming))
    earliest = min((first_published(stored), first_published(incoming)), key=parse_time)
    key_in = (incoming.version, _moment(incoming.published))
    key_old = (stored.version, _moment(stored.published))
    if key_in[0] > key_old[0] or (key_in[0] == key_old[0] and _later(key_in[1], key_old[1])):
        return dataclasses.replace(incoming, first_published=earliest)
    if earliest != first_published(stored):
        return dataclasses.replace(stored, first_published=earliest)
    return None


def _later(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    if a is None:
        return False
    return b is None or a > b


def operator_id(kind: str, start: dt.datetime) -> str:
    """A stable id, so typing the same announcement twice updates one message."""
    return f"op-{kind}-{start.astimezone(dt.UTC):%Y%m%dT%H%MZ}"


def operator_announcement(
    kind: str,
    start: dt.datetime,
    end: dt.datetime | None,
    now: dt.datetime,
    *,
    message_id: str | None = None,
    previous: Announcement | None = None,
    title: str = "",
    text: str = "",
) -> Announcement:
    """An outage entered by hand: a new message, or the next version of `previous`."""
    if kind not in OPERATOR_KINDS:
        raise AnnouncementError(f"kind {kind!r} is not one of {', '.join(OPERATOR_KINDS)}")
    if end is not None and end < start:
        raise AnnouncementError(f"end {iso(end)} is before start {iso(start)}")
    category, msg_type = OPERATOR_KINDS[kind]
    msg_id = message_id or (previous.id if previous else operator_id(kind, start))
    return Announcement(
        id=msg_id, event_id=previous.event_id if previous else msg_id,
        category=category.value, type=msg_type.value, start=iso(start),
        version=previous.version + 1 if previous else 1, published=iso(now),
        source=OPERATOR, title=title or (previous.title if previous else f"{kind} (operator)"),
        text=text or (previous.text if previous else ""),
        end=None if end is None else iso(end),
        first_published=first_published(previous) if previous else iso(now),
    )


def ended(previous: Announcement, at: dt.datetime, now: dt.datetime,
          source: str | None = None) -> Announcement:
    """The next version of `previous` with its end set (or moved) to `at`."""
    start = parse_time(previous.start)
    if at < start:
        raise AnnouncementError(
            f"end {iso(at)} is before the start {previous.start} of message {previous.id!r}")
    return dataclasses.replace(
        previous, end=iso(at), version=previous.version + 1, published=iso(now),
        source=source or previous.source, first_published=first_published(previous))


def observation(category: str, start: dt.datetime, now: dt.datetime, detail: str) -> Announcement:
    """The opening record of something the pipeline observed itself (one id per episode)."""
    if category not in OBSERVED_CATEGORIES:
        raise ValueError(f"observation category must be one of {OBSERVED_CATEGORIES}")
    stamp = f"{start.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
    msg_id = f"observed-{category.lower().replace('_', '-')}-{stamp}"
    return Announcement(
        id=msg_id, event_id=msg_id, category=category, type=MessageType.FAILURE_START.value,
        start=iso(start), version=1, published=iso(now), source=OBSERVED,
        title=category.replace("_", " ").lower(), text=detail, first_published=iso(now))


def latest_by_id(records: Iterable[Announcement]) -> dict[str, Announcement]:
    """The latest version of every message id among `records`."""
    found: dict[str, Announcement] = {}
    for record in records:
        kept = newer(record, found.get(record.id))
        if kept is not None:
            found[record.id] = kept
    return found


def from_request(body: Any, known: Mapping[str, Announcement],
                 now: dt.datetime) -> Announcement:
    """An operator request (HTTP body) as the record to publish.

    `{"kind": "failure"|"maintenance"|"total-failure", "start", "end"?, "id"?, "title"?,
    "text"?}` announces (or revises) an outage; `{"kind": "end", "id", "at"}` ends one;
    a full Latarnia message (`category` + `type`) is taken as it is, from an operator.
    """
    if not isinstance(body, Mapping):
        raise AnnouncementError("the request body must be a JSON object")
    if "category" in body and "type" in body:
        return from_latarnia(body, OPERATOR)
    kind = str(body.get("kind", ""))
    msg_id = body.get("id")
    if msg_id is not None and not isinstance(msg_id, str):
        raise AnnouncementError("'id' must be a string")
    if kind == "end":
        if not msg_id or "at" not in body:
            raise AnnouncementError("ending an announcement needs 'id' and 'at'")
        previous = known.get(msg_id)
        if previous is None:
            raise AnnouncementError(f"no announcement with id {msg_id!r} is known")
        return ended(previous, parse_time(str(body["at"]), "at"), now, OPERATOR)
    if "start" not in body:
        raise AnnouncementError("an announcement needs 'start'")
    start = parse_time(str(body["start"]), "start")
    end = None if body.get("end") in (None, "") else parse_time(str(body["end"]), "end")
    if kind not in OPERATOR_KINDS:
        raise AnnouncementError(f"'kind' must be one of {', '.join(OPERATOR_KINDS)} or end")
    previous = known.get(msg_id or operator_id(kind, start))
    return operator_announcement(kind, start, end, now, message_id=msg_id, previous=previous,
                                 title=str(body.get("title") or ""),
                                 text=str(body.get("text") or ""))
