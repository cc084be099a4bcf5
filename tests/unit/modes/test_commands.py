"""announce / deadlines / replay commands: their pure parts, without a broker."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json

import pytest

from pipeline.cli import announce as announce_cmd
from pipeline.cli import deadline_list as deadlines_cmd
from pipeline.cli.main import main
from pipeline.ksef.keyring import Keyring
from pipeline.modes.replay import from_sealed, from_submitted, plan
from pipeline.modes.snapshot import build_mode_state
from pipeline.modes.status_page import render
from pipeline.runtime.topic_reads import RawRecord
from tests.unit.modes.builders import announcement, at, deadline_record, sealed
from topics.records import KafkaRef, Rejection, SealedPrivate
from topics.sealed import encode_sealed


def test_announce_dry_run_prints_the_record(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["announce", "total-failure", "--start", "2026-03-02T08:00", "--id", "media-1",
                 "--dry-run"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["id"], record["category"], record["type"], record["source"]) == (
        "media-1", "TOTAL_FAILURE", "FAILURE_START", "operator")
    assert record["start"] == "2026-03-02T08:00:00+01:00" and record["version"] == 1


def test_announce_rejects_an_end_before_the_start(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["announce", "maintenance", "--start", "2026-03-02T20:00", "--end",
                 "2026-03-02T19:00", "--dry-run"])
    assert code == 2 and "before start" in capsys.readouterr().err


def test_announce_straight_to_kafka_needs_the_flags_and_is_audited() -> None:
    """The direct Kafka path keeps the endpoint's rules: a backdated start or an ended
    window only with --allow-backdate / --allow-end, and an audit record names who."""
    now = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
    parser = argparse.ArgumentParser()
    announce_cmd.configure(parser)
    args = parser.parse_args(["failure", "--start", "2026-03-02T08:00", "--id", "f-1"])
    record = announce_cmd.build(args, {}, now)
    refused = announce_cmd.guard(record, {}, args, now)
    assert isinstance(refused, str) and "--allow-backdate" in refused
    allowed = parser.parse_args(["failure", "--start", "2026-03-02T08:00", "--id", "f-1",
                                 "--allow-backdate"])
    guarded = announce_cmd.guard(record, {}, allowed, now)
    assert not isinstance(guarded, str)
    published, audit = guarded
    assert published.changed_by is not None and published.changed_by.endswith("@cli (kafka-write)")
    assert audit.kind == "operator-change" and audit.details["backdated"] is True
    assert audit.details["allow_backdate"] is True and audit.details["by"].endswith("@cli")
    ending = parser.parse_args(["end", "--id", "f-1", "--at", "2026-03-02T13:00"])
    ended = announce_cmd.build(ending, {"f-1": record}, now)
    refused = announce_cmd.guard(ended, {"f-1": record}, ending, now)
    assert isinstance(refused, str) and "--allow-end" in refused


RECORDS = [
    deadline_record("c", "2026-03-02", "emergency", status="open", deadline=None),
    deadline_record("b", "2026-03-02", "offline24", deadline="2026-03-03",
                    seller_nip="1111111111"),
    deadline_record("a", "2026-03-05", "offline24", deadline="2026-03-06"),
]


def test_deadlines_selection_order_and_table() -> None:
    chosen = deadlines_cmd.select(RECORDS, None, None)
    assert [r.invoice_id for r in chosen] == ["b", "a", "c"]  # open last
    assert [r.invoice_id for r in deadlines_cmd.select(RECORDS, "5265877635", None)] == ["a", "c"]
    assert [r.invoice_id for r in deadlines_cmd.select(
        RECORDS, None, dt.date(2026, 3, 3))] == ["b"]
    text = deadlines_cmd.table(chosen)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["DEADLINE", "STATUS", "MODE"]
    assert lines[1].startswith("2026-03-03") and lines[3].startswith("-")
    assert deadlines_cmd.summary(chosen) == "3 pending invoice(s) (due 2, open 1)"


SUBMITTED_REF = KafkaRef("p.ksef.invoices.submitted", 0, 3)


def _rejection(invoice_id: str, at_: str, reason: str = "spool-lost", code: int = 500,
               origin: KafkaRef | None = SUBMITTED_REF) -> Rejection:
    return Rejection(invoice_id=invoice_id, stage="validate", code=code, reason=reason,
                     message="m", rejected_at=at_, origin=origin)


def test_replay_plan_takes_the_latest_rejection_and_skips_accepted() -> None:
    rejections = [
        _rejection("x", "2026-03-02T10:00:00+00:00", reason="schema", code=430),
        _rejection("x", "2026-03-02T11:00:00+00:00"),
        _rejection("y", "2026-03-02T09:00:00+00:00"),
        _rejection("z", "2026-03-02T12:00:00+00:00"),
        _rejection("w", "2026-03-02T12:00:00+00:00", origin=None),
        _rejection("old", "2026-03-01T12:00:00+00:00"),
    ]
    result = plan(rejections, {"z"}, {"500"}, at("2026-03-02 00:00"))
    assert [r.invoice_id for r in result.chosen] == ["y", "x"]
    assert result.skipped == {"accepted since": 1, "no origin record": 1}
    assert plan(rejections, set(), {"schema"}, None).chosen == []  # x's latest is spool-lost


def test_replay_recovers_the_original_bytes_and_headers() -> None:
    rejection = _rejection("inv-1", "2026-03-02T10:00:00+00:00")
    raw = RawRecord(b"inv-1", b"<Faktura/>", {"ksef-seller-nip": b"5265877635",
                                              "ksef-attachments": b"1"})
    invoice = from_submitted(rejection, raw)
    assert (invoice.xml, invoice.seller_nip, invoice.attachments) == (
        b"<Faktura/>", "5265877635", True)
    assert "Faktura" not in repr(invoice)

    keyring = Keyring({"k1": b"\x02" * 32}, "k1")
    xml = b"<Faktura>2</Faktura>"
    meta = dataclasses.replace(sealed("inv-2", "2026-03-02", "offline24"), size=len(xml),
                               compression="none")
    record = encode_sealed(meta, SealedPrivate(), xml, keyring, keyring.nonce())
    later = _rejection("inv-2", "2026-03-02T10:00:00+00:00",
                       origin=KafkaRef("p.ksef.invoices.sealed", 1, 9))
    opened = from_sealed(later, RawRecord(b"5265877635", record, {}), keyring)
    assert opened.xml == b"<Faktura>2</Faktura>" and opened.seller_nip == "5265877635"
    with pytest.raises(LookupError, match="keyring"):
        from_sealed(later, RawRecord(None, record, {}), None)


def test_status_page_shows_state_history_and_escapes_text() -> None:
    now = at("2026-03-02 12:00")
    failure = announcement("f<1>", start="2026-03-02 08:00")
    page = render(build_mode_state([failure], now), [("2026-03-11", "due", "emergency", 1200),
                                                      ("", "open", "emergency", 3)],
                  [0, 1], 4, now)
    assert "FAILURE" in page and "f&lt;1&gt;" in page and "f<1>" not in page
    assert "1,200" in page and "1,203" in page and "partitions 0, 1 of 4" in page
    assert "no ksef.mode record yet" in render(None, [], [], 4, now)


def test_held_reject_dry_run_prints_the_request(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    assert main(["held", "reject", "--nip", "5265877635", "--note", "closed",
                 "--dry-run"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["seller_nip"] == "5265877635" and record["action"] == "reject"
    assert record["note"] == "closed" and record["request_id"].startswith("release-5265877635-")
    assert main(["held", "reject", "--nip", "52658", "--dry-run"]) == 2
    assert "10 digits" in capsys.readouterr().err


def test_deadlines_mark_invoices_of_held_contexts() -> None:
    import datetime as dt_

    from pipeline.ksef_api.link import NoCredentialsError
    from pipeline.stages.s3_submit.credential_hold import Holds, decide

    holds = Holds(dt_.timedelta(seconds=30))
    alert = holds.hold("5265877635", decide(NoCredentialsError("none")),
                       dt_.datetime(2026, 3, 2, tzinfo=dt_.UTC))
    assert alert is not None
    held = deadlines_cmd.held_marks([alert])
    assert held == {"5265877635": "held: credentials (no-credentials)"}
    chosen = deadlines_cmd.select(RECORDS, None, None)
    lines = deadlines_cmd.table(chosen, held).splitlines()
    assert lines[0].split()[3] == "HELD"
    assert "held: credentials (no-credentials)" in lines[2] and "held:" not in lines[1]
    assert deadlines_cmd.summary(chosen, held).endswith(
        "; 2 held for credentials of 1 context(s))")


def test_status_page_shows_credential_health() -> None:
    from pipeline.stages.s3_submit.credential_watch import HealthRow

    now = at("2026-03-02 12:00")
    rows = [HealthRow("5265877635", "certificate", "CN=<Seller>", 12, "held: revoked",
                      "revoked at 2026-03-02T11:59:00+00:00")]
    page = render(None, [], [], 4, now, rows)
    assert "Credentials of seller contexts" in page and "CN=&lt;Seller&gt;" in page
    assert "held: revoked" in page and "revoked at 2026-03-02T11:59:00+00:00" in page
