"""Pack bookkeeping, the session journal and UPO reading, without Kafka or KSeF."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.clock import WARSAW
from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator import upo_render as emulator_upo
from pipeline.ksef.package import BatchLimits, PackageManifest
from pipeline.ksef.upo import UpoError, parse_upo, upo_entries
from pipeline.stages.s2_pack.packing import OpenBatch, PackSettings, deadline_end, manifest_record
from topics.codec import decode, encode
from topics.records import KafkaRef, PackedBatch, SealedInvoice, SessionStep
from topics.session_journal import CLOSED, COMPLETED, OPENED, OPENING, PART_UPLOADED, Journal

(SELLER,) = seller_nips(1, seed=3)
TODAY = dt.date(2026, 11, 20)


def sealed(i: int, deadline: str | None, xml: bytes) -> SealedInvoice:
    from pipeline.ksef.numbers import sha256_b64

    return SealedInvoice(
        invoice_id=f"i{i}", seller_nip=SELLER, invoice_number=f"N/{i}",
        issue_date=TODAY.isoformat(), kind="VAT", size=len(xml), sha256=sha256_b64(xml),
        has_attachments=False, mode="online", key_id="k1",
        qr_code_1="", received_at="", sealed_at="", origin=KafkaRef("s", 0, i),
        deadline=deadline)


def test_batch_flushes_on_count_linger_and_deadline(tmp_path: Path) -> None:
    settings = PackSettings(spool_dir=tmp_path, linger_s=30, max_age_s=100,
                            limits=BatchLimits(max_invoices=3), deadline_safety_s=3600)
    batch = OpenBatch.start((SELLER, False), settings)
    far = (TODAY + dt.timedelta(days=5)).isoformat()
    for i in range(2):
        xml = make_invoice(seller_nip=SELLER, number=f"N/{i}", issue_date=TODAY, seed=i)
        batch.add(sealed(i, far, xml), xml, KafkaRef("s", 0, i))
    now = batch.last_added
    noon = dt.datetime.combine(TODAY, dt.time(12), tzinfo=WARSAW)
    assert batch.due_to_flush(settings, now + 1, noon) is None
    assert batch.due_to_flush(settings, now + 31, noon) == "linger"
    batch.last_added = now + 150  # a steady trickle: never quiet, but old
    assert batch.due_to_flush(settings, batch.opened_at + 101, noon) == "age"
    batch.last_added = now
    last_hour = dt.datetime.combine(TODAY + dt.timedelta(days=5), dt.time(23, 30), tzinfo=WARSAW)
    assert batch.due_to_flush(settings, now + 1, last_hour) == "deadline"
    xml = make_invoice(seller_nip=SELLER, number="N/2", issue_date=TODAY, seed=2)
    batch.add(sealed(2, far, xml), xml, KafkaRef("s", 0, 2))
    assert batch.due_to_flush(settings, now + 1, noon) == "full"
    batch.builder.abort()


def test_deadline_and_age_are_never_shadowed_by_a_pending_linger(tmp_path: Path) -> None:
    """The pack stage puts a linger off while records wait in Kafka; a batch that is
    also old or due must then still answer age or deadline, or it waits for good."""
    settings = PackSettings(spool_dir=tmp_path, linger_s=30, max_age_s=100,
                            deadline_safety_s=3600)
    batch = OpenBatch.start((SELLER, False), settings)
    xml = make_invoice(seller_nip=SELLER, number="N/0", issue_date=TODAY, seed=0)
    batch.add(sealed(0, TODAY.isoformat(), xml), xml, KafkaRef("s", 0, 0))
    quiet = batch.last_added + 31  # linger is due as well in both checks below
    noon = dt.datetime.combine(TODAY, dt.time(12), tzinfo=WARSAW)
    last_hour = dt.datetime.combine(TODAY, dt.time(23, 30), tzinfo=WARSAW)
    assert batch.due_to_flush(settings, quiet, last_hour) == "deadline"
    assert batch.due_to_flush(settings, batch.opened_at + 101, noon) == "age"
    assert batch.due_to_flush(settings, quiet, noon) == "linger"
    batch.builder.abort()


def test_a_deadline_batch_fills_while_invoices_stream_in_then_seals(tmp_path: Path) -> None:
    """In a day's last hour every batch is deadline-bound: sealed at every tick it made
    hundreds of tiny sessions (KSeF's open limit then held them back); a batch that
    invoices still stream into fills for up to deadline_fill_s, a quiet one seals."""
    settings = PackSettings(spool_dir=tmp_path, deadline_fill_s=10)
    batch = OpenBatch.start((SELLER, False), settings)
    xml = make_invoice(seller_nip=SELLER, number="N/0", issue_date=TODAY, seed=0)
    batch.add(sealed(0, TODAY.isoformat(), xml), xml, KafkaRef("s", 0, 0))
    streaming = batch.last_added + 0.5
    assert batch.still_filling(settings, streaming)
    assert not batch.still_filling(settings, batch.last_added + 1.5)  # quiet: seal now
    batch.opened_at -= 10  # streaming, but filled long enough
    assert not batch.still_filling(settings, streaming)
    batch.builder.abort()


def test_deadline_day_ends_at_polish_midnight() -> None:
    end = deadline_end(dt.date(2026, 7, 10))
    assert end.astimezone(dt.UTC) == dt.datetime(2026, 7, 10, 22, 0, tzinfo=dt.UTC)


def test_manifest_record_round_trips_to_the_package_manifest(tmp_path: Path) -> None:
    settings = PackSettings(spool_dir=tmp_path, limits=BatchLimits(max_part_bytes=5_000))
    batch = OpenBatch.start((SELLER, True), settings)
    for i in range(5):
        xml = make_invoice(seller_nip=SELLER, number=f"N/{i}", issue_date=TODAY, seed=i,
                           profile="typical")
        batch.add(sealed(i, TODAY.isoformat(), xml), xml, KafkaRef("s", 0, i))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    packaged = batch.builder.finish(key.public_key(), keep_package=False)
    raw = manifest_record(batch, packaged, "kid")
    record = decode(PackedBatch, raw)
    assert record.offline_mode and record.earliest_deadline == TODAY.isoformat()
    assert [i.invoice_id for i in record.invoices] == [f"i{i}" for i in range(5)]
    assert [(i.invoice_id, i.sha256, f"{i.origin.topic}/{i.origin.partition}/"
             f"{i.origin.offset}" if i.origin else None) for i in record.invoices] == list(
        batch.packed())
    assert record.invoices[3].ref == KafkaRef("s", 0, 3)
    assert PackageManifest.from_dict(asdict(record)) == packaged.manifest
    assert len(record.parts) >= 2
    # Rows on the topic (topics named once), the same record as its objects would be.
    doc = orjson.loads(raw)
    assert all(isinstance(i, list) for i in doc["invoices"]) and doc["sealed_topic"] == "s"
    assert decode(PackedBatch, encode(record)) == record


def test_with_rows_off_the_manifest_lists_objects_that_older_workers_read(
        tmp_path: Path) -> None:
    settings = PackSettings(spool_dir=tmp_path, manifest_rows=False)
    batch = OpenBatch.start((SELLER, False), settings)
    for i in range(3):
        xml = make_invoice(seller_nip=SELLER, number=f"N/{i}", issue_date=TODAY, seed=i)
        batch.add(sealed(i, None, xml), xml, KafkaRef("s", 0, i))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raw = manifest_record(batch, batch.builder.finish(key.public_key(), keep_package=False),
                          "kid")
    doc = orjson.loads(raw)
    assert [type(i) for i in doc["invoices"]] == [dict] * 3
    assert doc["sealed_topic"] is None
    assert [i.invoice_id for i in decode(PackedBatch, raw).invoices] == ["i0", "i1", "i2"]
    assert [e[0] for e in batch.packed()] == ["i0", "i1", "i2"]


def step(name: str, ref: str | None = "S1", **details: object) -> SessionStep:
    return SessionStep(batch_id="b1", seller_nip=SELLER, step=name, at="t", session_ref=ref,
                       details=dict(details))


def test_journal_tracks_resume_point_and_ignores_late_duplicates() -> None:
    j = Journal()
    j.apply(step(OPENING, None))
    j.apply(step(OPENED, opened_at="x", uploads=[]))
    j.apply(step(PART_UPLOADED, ordinal=2))
    j.apply(step(PART_UPLOADED, ordinal=1))
    progress = j.get("b1")
    assert progress is not None and progress.step == OPENED and progress.parts_done == {1, 2}
    j.apply(step(CLOSED))
    j.apply(step(COMPLETED))
    j.apply(step(OPENED))  # redelivered old step
    progress = j.get("b1")
    assert progress is not None and progress.step == COMPLETED


def test_journal_keeps_the_submitted_record_a_closed_correction_answered() -> None:
    """The interactive lane tells a redelivered correction (the same `.submitted`
    record: nothing to do) from a producer's replay (a new one: reported again)."""
    j = Journal()
    j.apply(step(OPENING, None))
    j.apply(step(OPENED))
    progress = j.get("b1")
    assert progress is not None and progress.origin is None
    j.apply(step(CLOSED, origin="t.ksef.invoices.submitted/3/17"))
    j.apply(step(COMPLETED))
    progress = j.get("b1")
    assert progress is not None and progress.origin == "t.ksef.invoices.submitted/3/17"


def test_upo_entries_are_read_back() -> None:
    invoices = [{"seller_nip": SELLER, "ksef_number": f"{SELLER}-20261120-0000000000{i:02X}-00",
                 "invoice_number": f"N/{i}", "issue_date": "2026-11-20",
                 "invoicing_date": "2026-11-20T10:00:00+01:00",
                 "acquisition_date": "2026-11-20T10:00:01+01:00", "invoice_hash": f"h{i}",
                 "invoicing_mode": "Online"} for i in range(3)]
    xml = emulator_upo.render({"reference": "S-REF", "nip": SELLER, "token_reference": "T"},
                              invoices)
    doc = parse_upo(xml)
    assert doc.session_ref == "S-REF"
    assert [(e.invoice_hash, e.ksef_number) for e in doc.entries] == [
        (i["invoice_hash"], i["ksef_number"]) for i in invoices]
    try:
        parse_upo(b"<nope")
    except UpoError as exc:
        assert "well-formed" in str(exc)
    else:
        raise AssertionError("malformed UPO accepted")
    assert list(upo_entries(xml)) == list(doc.entries)  # one at a time, the same entries
    nameless = xml.replace(b"S-REF", b"")
    with pytest.raises(UpoError, match="names no session"):
        list(upo_entries(nameless))
    with pytest.raises(UpoError, match="names no session"):
        parse_upo(nameless)
