"""Outage announcements (Latarnia KSeF messages) and the windows they describe.

A Latarnia message is `{id, eventId, category, type, title, text, start, end, version,
published}`. How a list of them becomes outage windows:

1. Versions: for each `id` the highest `version` replaces every earlier one (on a tie
   the later `published`, then the later position in the input, wins). The earliest
   `published` seen for an `id` is kept: a failure announced on Wednesday stays
   announced on Wednesday when Friday's version adds its end. A store that keeps only
   the latest version (a topic compacted by id) can carry that moment along in an
   optional `firstPublished` field.
2. Events: messages sharing an `eventId` (or, without one, their own `id`) describe one
   window. Its category and start come from the latest FAILURE_START /
   MAINTENANCE_ANNOUNCEMENT message; its end from the latest FAILURE_END message when
   there is one (its `end`, else its `published`), otherwise from the `end` of the
   start message, which may be absent: the window is then open-ended.
3. The window was announced at the earliest `published` among its messages; a message
   without `published` counts as out at the moment it reports (start, or end for a
   FAILURE_END), so operator-entered outages need not say when they were announced.

All legal dates are Polish dates: `polish_date` takes the calendar day in Europe/Warsaw
(23:30 UTC on a summer day is already the next day in Poland). Times without an offset
are taken as Warsaw local time, as an operator typing them would mean.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

WARSAW = ZoneInfo("Europe/Warsaw")
_E = TypeVar("_E", bound=StrEnum)


class AnnouncementError(ValueError):
    """A message that cannot be understood; the text says which field and why."""


class Category(StrEnum):
    FAILURE = "FAILURE"
    TOTAL_FAILURE = "TOTAL_FAILURE"
    MAINTENANCE = "MAINTENANCE"


class MessageType(StrEnum):
    FAILURE_START = "FAILURE_START"
    FAILURE_END = "FAILURE_END"
    MAINTENANCE_ANNOUNCEMENT = "MAINTENANCE_ANNOUNCEMENT"


def polish_date(moment: dt.datetime) -> dt.date:
    """The calendar day in Poland at `moment` (naive times are Warsaw local time)."""
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(WARSAW).date()


def parse_time(value: str, where: str = "time") -> dt.datetime:
    """ISO 8601 date-time (or bare date = midnight) as an aware datetime."""
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError) as exc:
        raise AnnouncementError(f"{where}: {value!r} is not an ISO 8601 date-time") from exc
    return moment.replace(tzinfo=WARSAW) if moment.tzinfo is None else moment


@dataclass(frozen=True, slots=True)
class Message:
    """One version of one Latarnia (or operator-entered) message."""

    id: str
    event_id: str
    category: Category
    type: MessageType
    start: dt.datetime | None
    end: dt.datetime | None
    version: int
    published: dt.datetime | None
    title: str = ""
    text: str = ""
    first_published: dt.datetime | None = None  # when version 1 came out, if carried along

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Message:
        """Build from a Latarnia JSON object (camelCase `eventId` or snake `event_id`)."""
        if not isinstance(raw, Mapping):
            raise AnnouncementError(f"a message must be a JSON object, got {type(raw).__name__}")
        msg_id = _text(raw, "id", required=True)
        where = f"message {msg_id!r}"
        event_id = _text(raw, "eventId") or _text(raw, "event_id") or msg_id
        category = _enum(Category, raw.get("category"), f"{where}: category")
        msg_type = _enum(MessageType, raw.get("type"), f"{where}: type")
        start = _optional_time(raw.get("start"), f"{where}: start")
        end = _optional_time(raw.get("end"), f"{where}: end")
        published = _optional_time(raw.get("published"), f"{where}: published")
        if start is not None and end is not None and end < start:
            raise AnnouncementError(f"{where}: end {end.isoformat()} is before its start")
        if msg_type is MessageType.FAILURE_END:
            if end is None and published is None:
                raise AnnouncementError(f"{where}: FAILURE_END needs an end or published time")
        elif start is None and published is None:
            raise AnnouncementError(f"{where}: {msg_type} needs a start or published time")
        return cls(
            id=msg_id,
            event_id=event_id,
            category=category,
            type=msg_type,
            start=start,
            end=end,
            version=_version(raw.get("version"), where),
            published=published,
            title=_text(raw, "title"),
            text=_text(raw, "text"),
            first_published=_optional_time(
                raw.get("firstPublished", raw.get("first_published")), f"{where}: firstPublished"
            ),
        )


def _text(raw: Mapping[str, Any], key: str, required: bool = False) -> str:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise AnnouncementError(f"message has no {key!r}: {dict(raw)!r:.200}")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise AnnouncementError(f"{key!r} must be a string, got {value!r:.80}")
    return str(value)


def _enum(kind: type[_E], value: Any, where: str) -> _E:
    if isinstance(value, str):
        try:
            return kind(value.strip().upper().replace("-", "_"))
        except ValueError:
            pass
    allowed = "|".join(member.value for member in kind)
    raise AnnouncementError(f"{where} is {value!r}, expected one of {allowed}")


def _optional_time(value: Any, where: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AnnouncementError(f"{where} must be an ISO 8601 string, got {value!r:.80}")
    return parse_time(value, where)


def _version(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise AnnouncementError(f"{where}: version must be an integer, got {value!r:.80}")


def parse_messages(document: Any) -> list[Message]:
    """Messages from a JSON array, or from an object with `messages` (Latarnia /status)."""
    if isinstance(document, Mapping) and "messages" in document:
        document = document["messages"]
    if not isinstance(document, list):
        raise AnnouncementError("announcements must be a JSON array of messages")
    messages = []
    for index, raw in enumerate(document):
        try:
            messages.append(Message.from_json(raw))
        except AnnouncementError as exc:
            raise AnnouncementError(f"message #{index}: {exc}") from exc
    return messages


@dataclass(frozen=True, slots=True)
class Window:
    """One announced outage (failure, total failure or maintenance) as now known.

    The Polish days of its start, end and announcement are computed once here, because
    deadline rules compare nothing else.
    """

    event_id: str
    category: Category
    start: dt.datetime
    end: dt.datetime | None
    announced: dt.datetime
    start_day: dt.date = field(init=False)
    end_day: dt.date | None = field(init=False)
    announced_day: dt.date = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_day", polish_date(self.start))
        object.__setattr__(self, "end_day", None if self.end is None else polish_date(self.end))
        object.__setattr__(self, "announced_day", polish_date(self.announced))

    def covers_day(self, day: dt.date) -> bool:
        """In force at some moment of the Polish day `day`."""
        end_day = self.end_day
        return self.start_day <= day and (end_day is None or day <= end_day)

    def covers_moment(self, moment: dt.datetime) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)

    def describe(self) -> str:
        kind = {
            Category.FAILURE: "failure",
            Category.TOTAL_FAILURE: "total failure",
            Category.MAINTENANCE: "unavailability",
        }[self.category]
        return f"{kind} {self.event_id}"


def _sort_key(message: Message, position: int) -> tuple[int, dt.datetime, int]:
    published = message.published or dt.datetime.min.replace(tzinfo=dt.UTC)
    return (message.version, published, position)


def latest_versions(messages: Iterable[Message]) -> dict[str, tuple[Message, dt.datetime | None]]:
    """id -> (its latest version, the earliest `published` seen for that id)."""
    best: dict[str, tuple[tuple[int, dt.datetime, int], Message]] = {}
    first_published: dict[str, dt.datetime | None] = {}
    for position, message in enumerate(messages):
        key = _sort_key(message, position)
        current = best.get(message.id)
        if current is None or key > current[0]:
            best[message.id] = (key, message)
        seen = first_published.get(message.id)
        for moment in (message.published, message.first_published):
            if moment is not None and (seen is None or moment < seen):
                seen = moment
        first_published[message.id] = seen
    return {msg_id: (msg, first_published[msg_id]) for msg_id, (_, msg) in best.items()}


def _latest(messages: list[Message]) -> Message:
    """The most recently published of several messages (different ids) of one event."""
    never = dt.datetime.min.replace(tzinfo=dt.UTC)
    return max(messages, key=lambda m: m.published or never)


def _reported_time(message: Message) -> dt.datetime | None:
    """The moment a message reports: when the outage ended (FAILURE_END) or started."""
    return message.end if message.type is MessageType.FAILURE_END else message.start


def _window(event_id: str, members: list[tuple[Message, dt.datetime | None]]) -> Window:
    messages = [message for message, _ in members]
    openers = [m for m in messages if m.type is not MessageType.FAILURE_END]
    closers = [m for m in messages if m.type is MessageType.FAILURE_END]
    opener = _latest(openers) if openers else None
    closer = _latest(closers) if closers else None
    head = opener or closer
    assert head is not None
    if closer is not None:
        end: dt.datetime | None = closer.end or closer.published
    else:
        end = head.end
    start = (opener.start or opener.published) if opener is not None else None
    if start is None:
        start = closer.start if closer is not None and closer.start is not None else end
    assert start is not None
    if end is not None and end < start:
        start = end  # the end message wins over a start that contradicts it
    # announced when first published; a message without any publication time counts as
    # out when the moment it reports happened (its start, or its end for a FAILURE_END)
    announced = min(first or _reported_time(message) or start for message, first in members)
    return Window(event_id, head.category, start, end, announced)


_OUTAGES = (Category.FAILURE, Category.TOTAL_FAILURE)


class AnnouncementHistory:
    """Immutable snapshot of every outage window, built once from a list of messages.

    Indexed for the questions the deadline rules ask (which windows touch a day, which
    were announced from a day on, which maintenance follows which), so one deadline
    costs a few dictionary lookups and a short walk however long the history grows.
    """

    __slots__ = (
        "_announced_days",
        "_by_announced",
        "_by_day",
        "_maintenance",
        "_maintenance_starts",
        "_open",
        "_preannounced",
        "messages",
    )

    def __init__(self, messages: Iterable[Message] = ()) -> None:
        self.messages: tuple[Message, ...] = tuple(messages)
        latest = latest_versions(self.messages)
        events: dict[str, list[tuple[Message, dt.datetime | None]]] = {}
        for message, first in latest.values():
            events.setdefault(message.event_id, []).append((message, first))
        windows = [_window(event_id, members) for event_id, members in events.items()]
        windows.sort(key=lambda w: (w.announced, w.start, w.event_id))
        self._by_announced: tuple[Window, ...] = tuple(windows)
        self._announced_days = [w.announced_day for w in windows]
        by_day: dict[dt.date, list[Window]] = {}
        for w in windows:
            if w.end_day is not None:
                for offset in range((w.end_day - w.start_day).days + 1):
                    by_day.setdefault(w.start_day + dt.timedelta(days=offset), []).append(w)
        self._by_day = {day: tuple(ws) for day, ws in by_day.items()}
        self._open = tuple(w for w in windows if w.end is None)
        self._preannounced = tuple(
            w for w in windows if w.announced_day < w.start_day and w.category in _OUTAGES
        )
        maintenance = sorted(
            (w for w in windows if w.category is Category.MAINTENANCE),
            key=lambda w: (w.start, w.event_id),
        )
        self._maintenance: tuple[Window, ...] = tuple(maintenance)
        self._maintenance_starts = [w.start for w in maintenance]

    @classmethod
    def from_json(cls, document: Any) -> AnnouncementHistory:
        return cls(parse_messages(document))

    def with_messages(self, messages: Iterable[Message]) -> AnnouncementHistory:
        """A new snapshot with more messages (new versions replace older ones)."""
        return AnnouncementHistory((*self.messages, *messages))

    @property
    def windows(self) -> tuple[Window, ...]:
        """Every window, in order of announcement."""
        return self._by_announced

    def window(self, event_id: str) -> Window | None:
        return next((w for w in self._by_announced if w.event_id == event_id), None)

    def covering(self, day: dt.date) -> list[Window]:
        """Windows touching Polish day `day`, announced or not by then."""
        found = list(self._by_day.get(day, ()))
        found += [w for w in self._open if w.start_day <= day]
        return found

    def outages_announced_before_start(self) -> tuple[Window, ...]:
        """Failures / total failures announced on an earlier day than they start (rare)."""
        return self._preannounced

    def announced_index(self, day: dt.date) -> int:
        """Position in `windows` of the first window announced on or after `day`."""
        return bisect.bisect_left(self._announced_days, day)

    def announced_from(self, day: dt.date) -> Iterator[Window]:
        """Windows announced on or after `day`, in order of announcement (lazily)."""
        windows = self._by_announced
        for index in range(self.announced_index(day), len(windows)):
            yield windows[index]

    def maintenance_from(self, moment: dt.datetime) -> Iterator[Window]:
        """Maintenance windows starting at or after `moment`, earliest first (lazily)."""
        windows = self._maintenance
        for index in range(bisect.bisect_left(self._maintenance_starts, moment), len(windows)):
            yield windows[index]

    def in_force_on(self, day: dt.date) -> list[Window]:
        """Windows covering Polish day `day` whose announcement was out by that day."""
        return [w for w in self.covering(day) if w.announced_day <= day]

    def in_force_at(self, moment: dt.datetime) -> list[Window]:
        """Windows covering `moment` (naive = Warsaw time) and already announced at it."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=WARSAW)
        return [
            w
            for w in self.covering(polish_date(moment))
            if w.covers_moment(moment) and w.announced <= moment
        ]

    def __len__(self) -> int:
        return len(self._by_announced)

    def __repr__(self) -> str:
        return f"AnnouncementHistory({len(self.messages)} messages, {len(self)} windows)"
