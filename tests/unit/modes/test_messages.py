"""ksef.announcements records: Latarnia JSON, versions, operator and observed records."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.ksef.announcements import AnnouncementError, Category, MessageType
from pipeline.modes.messages import (
    KSEF_UNREACHABLE,
    OBSERVED,
    OPERATOR,
    ended,
    from_latarnia,
    from_request,
    latest_by_id,
    newer,
    observation,
    operator_announcement,
    to_message,
)
from tests.unit.modes.builders import announcement, at

LATARNIA_JSON = {
    "id": "12-start", "eventId": 12, "category": "FAILURE", "type": "FAILURE_START",
    "title": "Awaria", "text": "", "start": "2026-03-02T07:00:00Z", "end": None,
    "version": 1, "published": "2026-03-02T07:05:00Z",
}


def test_latarnia_json_becomes_a_record_the_rules_core_reads_back() -> None:
    record = from_latarnia(LATARNIA_JSON)
    assert (record.id, record.event_id, record.source) == ("12-start", "12", "latarnia")
    message = to_message(record)
    assert message.category is Category.FAILURE and message.type is MessageType.FAILURE_START
    assert message.start == at("2026-03-02 08:00") and message.end is None
    assert message.published == at("2026-03-02 08:05")


def test_malformed_latarnia_message_is_refused_with_the_field_named() -> None:
    with pytest.raises(AnnouncementError, match="category"):
        from_latarnia({**LATARNIA_JSON, "category": "OUTAGE"})


def test_newer_version_wins_and_keeps_the_first_publication() -> None:
    v1 = announcement("f", start="2026-03-02 08:00", published="2026-03-02 08:05")
    v2 = dataclasses.replace(v1, version=2, end="2026-03-03T10:00:00+01:00",
                             published="2026-03-03T10:05:00+01:00")
    first = newer(v1, None)
    assert first is not None and first.first_published == v1.published
    kept = newer(v2, first)
    assert kept is not None and kept.end == v2.end and kept.version == 2
    assert kept.first_published == v1.published
    assert newer(v1, kept) is None  # an older version changes nothing
    assert newer(kept, kept) is None  # nor does a replay
    assert latest_by_id([v2, v1]) == {"f": dataclasses.replace(v2, first_published=v1.published)}


def test_operator_announcement_and_its_end_are_versions_of_one_message() -> None:
    now = at("2026-03-02 09:00")
    opened = operator_announcement("maintenance", at("2026-03-02 20:00"), None, now)
    assert opened.id == "op-maintenance-20260302T1900Z" and opened.version == 1
    assert (opened.category, opened.type, opened.source) == (
        "MAINTENANCE", "MAINTENANCE_ANNOUNCEMENT", OPERATOR)
    closed = ended(opened, at("2026-03-02 23:00"), at("2026-03-02 23:01"))
    assert (closed.id, closed.version, closed.end) == (opened.id, 2, "2026-03-02T23:00:00+01:00")
    assert closed.first_published == opened.published
    with pytest.raises(AnnouncementError, match="before the start"):
        ended(opened, at("2026-03-02 19:00"), now)


def test_requests_announce_revise_and_end() -> None:
    now = at("2026-03-02 09:00")
    body = {"kind": "failure", "start": "2026-03-02T08:00", "id": "bip-7"}
    opened = from_request(body, {}, now)
    assert (opened.id, opened.version, opened.end) == ("bip-7", 1, None)
    revised = from_request({**body, "end": "2026-03-02T12:00"}, {"bip-7": opened}, now)
    assert revised.version == 2 and revised.end == "2026-03-02T12:00:00+01:00"
    closed = from_request({"kind": "end", "id": "bip-7", "at": "2026-03-02T13:00"},
                          {"bip-7": revised}, now)
    assert closed.version == 3 and closed.end == "2026-03-02T13:00:00+01:00"
    raw = from_request(LATARNIA_JSON, {}, now)
    assert raw.source == OPERATOR and raw.id == "12-start"


@pytest.mark.parametrize(("body", "problem"), [
    ({"kind": "end", "id": "nope", "at": "2026-03-02T13:00"}, "no announcement"),
    ({"kind": "end", "id": "x"}, "needs 'id' and 'at'"),
    ({"kind": "outage", "start": "2026-03-02T08:00"}, "must be one of"),
    ({"kind": "failure"}, "needs 'start'"),
    ({"kind": "failure", "start": "yesterday"}, "not an ISO 8601"),
    ([1, 2], "JSON object"),
])
def test_bad_requests_say_what_is_wrong(body: object, problem: str) -> None:
    with pytest.raises(AnnouncementError, match=problem):
        from_request(body, {}, at("2026-03-02 09:00"))


def test_observation_has_one_id_per_episode_and_is_not_an_announcement() -> None:
    record = observation(KSEF_UNREACHABLE, at("2026-03-02 08:00"), at("2026-03-02 08:02"),
                         "POST /sessions/batch: HTTP 503")
    assert record.id == "observed-ksef-unreachable-20260302T070000Z"
    assert record.source == OBSERVED and record.end is None
    with pytest.raises(ValueError, match="category"):
        observation("FAILURE", at("2026-03-02 08:00"), at("2026-03-02 08:00"), "")
