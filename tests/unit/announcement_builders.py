"""Latarnia message builders shared by the rules tests (plain JSON-shaped dicts)."""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]


def message(
    msg_id: str,
    msg_type: str,
    category: str,
    *,
    start: str | None = None,
    end: str | None = None,
    published: str | None = None,
    version: int = 1,
    event_id: str | None = None,
) -> Message:
    return {
        "id": msg_id,
        "eventId": event_id or msg_id,
        "category": category,
        "type": msg_type,
        "title": f"{category} {msg_type}",
        "text": "",
        "start": start,
        "end": end,
        "version": version,
        "published": published,
    }


def outage(
    event_id: str,
    start: str,
    end: str | None = None,
    *,
    published: str | None = None,
    category: str = "FAILURE",
) -> list[Message]:
    """A FAILURE_START (published at `published`, default its start) and, with `end`, a
    FAILURE_END of the same event published when it ended."""
    messages = [
        message(
            f"{event_id}-start",
            "FAILURE_START",
            category,
            start=start,
            published=published or start,
            event_id=event_id,
        )
    ]
    if end is not None:
        messages.append(
            message(
                f"{event_id}-end",
                "FAILURE_END",
                category,
                start=start,
                end=end,
                published=end,
                event_id=event_id,
            )
        )
    return messages


def maintenance(
    event_id: str, start: str, end: str | None, *, published: str = "2025-01-02T10:00:00+01:00"
) -> list[Message]:
    return [
        message(
            event_id,
            "MAINTENANCE_ANNOUNCEMENT",
            "MAINTENANCE",
            start=start,
            end=end,
            published=published,
        )
    ]


def revision(base: Message, version: int, **changes: str | None) -> Message:
    """A later version of `base` with some fields changed."""
    return {**base, "version": version, **changes}
