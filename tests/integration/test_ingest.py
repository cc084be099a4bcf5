"""`ksef-pipeline ingest` on the real broker: the input contract, byte for byte."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from pipeline.demo.samples import make_invoice, seller_nips
from tests.kafka_harness import REPO, KafkaSandbox
from topics.catalog import SUBMITTED


def _ingest(sandbox: KafkaSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "ingest", *args], cwd=REPO,
                          env=sandbox.env(), capture_output=True, text=True, timeout=120)


def _records_on_topic(sandbox: KafkaSandbox) -> int:
    name = sandbox.name(SUBMITTED)
    c = Consumer({"bootstrap.servers": sandbox.bootstrap, "group.id": "watermarks"})
    try:
        partitions = c.list_topics(name, timeout=30).topics[name].partitions
        return sum(c.get_watermark_offsets(TopicPartition(name, p), timeout=30)[1]
                   for p in partitions)
    finally:
        c.close()


def test_ingest_sends_every_file_untouched_with_its_headers(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    seller, = seller_nips(1, seed=5)
    today = dt.date(2026, 11, 30)
    files: dict[str, bytes] = {}
    for i in range(60):
        folder = tmp_path / "in" / f"day-{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        xml = make_invoice(seller_nip=seller, number=f"FV/I/{i}", issue_date=today, seed=i)
        if i == 7:  # bytes a re-encoding would change: CRLF line ends, no declaration
            xml = xml.split(b"?>", 1)[1].lstrip().replace(b"\n", b"\r\n")
        (folder / f"inv-{i}.xml").write_bytes(xml)
        files[f"inv-{i}"] = xml
    (tmp_path / "in" / "notes.txt").write_text("not an invoice file")

    done = _ingest(sandbox, str(tmp_path / "in"), "--source", "billing-eu",
                   "--seller-nip", seller)

    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"ingested 60 invoices in [\d.]+ s \([\d,]+ invoices/s\) to \S+\n",
                        done.stdout), done.stdout
    assert "ingest [" in done.stderr  # the progress bar
    msgs = sandbox.consume(SUBMITTED, 60, timeout_s=60)
    got = {m.key().decode(): m for m in msgs}
    assert len(msgs) == 60 and set(got) == set(files)
    for key, msg in got.items():
        assert msg.value() == files[key], key
        assert dict(msg.headers()) == {"ksef-source": b"billing-eu",
                                       "ksef-seller-nip": seller.encode()}


def test_ingest_refuses_files_sharing_an_invoice_id_and_sends_nothing(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    seller, = seller_nips(1, seed=6)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        xml = make_invoice(seller_nip=seller, number=f"FV/{folder}/1",
                           issue_date=dt.date(2026, 11, 30))
        (tmp_path / folder / "FV-1.xml").write_bytes(xml)

    refused = _ingest(sandbox, str(tmp_path / "a"), str(tmp_path / "b"))

    assert refused.returncode == 2
    assert "1 invoice id(s) shared by several files, nothing sent (try --id path)" in refused.stderr
    assert "'FV-1'" in refused.stderr
    assert _records_on_topic(sandbox) == 0

    by_path = _ingest(sandbox, "--id", "path", str(tmp_path / "a"), str(tmp_path / "b"))
    assert by_path.returncode == 0, by_path.stderr
    keys = {m.key().decode() for m in sandbox.consume(SUBMITTED, 2, timeout_s=60)}
    assert keys == {str(tmp_path / "a" / "FV-1"), str(tmp_path / "b" / "FV-1")}


def test_ingest_of_a_folder_without_invoices_says_so(sandbox: KafkaSandbox,
                                                     tmp_path: Path) -> None:
    empty = _ingest(sandbox, str(tmp_path))
    missing = _ingest(sandbox, str(tmp_path / "nowhere"))

    assert (empty.returncode, missing.returncode) == (2, 2)
    assert f"no .xml files under {tmp_path}" in empty.stderr
    assert "no such file or directory" in missing.stderr


def test_ingest_into_a_cluster_without_the_catalog_says_so_at_once(
        bootstrap: str, tmp_path: Path) -> None:
    """Before, it waited 30 s, showed a full progress bar, then failed every invoice."""
    bare = KafkaSandbox(bootstrap)  # a prefix with no topics: `topics create` never ran
    seller, = seller_nips(1, seed=7)
    (tmp_path / "FV-1.xml").write_bytes(make_invoice(seller_nip=seller, number="FV/1",
                                                     issue_date=dt.date(2026, 11, 30)))
    refused = _ingest(bare, str(tmp_path))
    assert refused.returncode == 2, refused.stderr
    assert f"topic {bare.name(SUBMITTED)} does not exist on the cluster" in refused.stderr
    assert "ksef-pipeline topics create" in refused.stderr and "nothing sent" in refused.stderr
    assert "ingest [" not in refused.stderr  # no progress bar for nothing
