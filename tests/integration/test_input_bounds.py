"""Input bounds on a running validate worker (issue 16 point 2): a huge key or header
gets a small rejection, the worker keeps running (no crash loop on one record), and an
invoice sent after them is still sealed."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from pipeline.clock import polish_today
from pipeline.demo.samples import make_invoice, seller_nips
from tests.kafka_harness import KafkaSandbox, start_worker
from topics.catalog import REJECTED, SEALED, SUBMITTED
from topics.codec import decode
from topics.records import Rejection
from topics.sealed import read_meta

BOUND = 64 * 1024


def _send(sandbox: KafkaSandbox, items: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
          ) -> None:
    """Produce each record (with its own headers) and fail unless the broker took it."""
    errors: list[Any] = []
    producer = sandbox.producer()
    for key, value, headers in items:
        producer.produce(sandbox.name(SUBMITTED), key=key, value=value, headers=headers,
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
    assert producer.flush(60) == 0 and not errors, errors


def _keyring(tmp_path: Path, byte: bytes) -> str:
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_bytes(orjson.dumps({"active": "k1", "keys": {
        "k1": base64.b64encode(byte * 32).decode()}}))
    keyring_file.chmod(0o600)  # a keyring others may read is refused
    return str(keyring_file)


def test_oversized_key_and_headers_are_rejected_and_the_worker_keeps_sealing(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    today = polish_today()
    sellers = seller_nips(4, seed=16)

    def invoice(i: int) -> bytes:
        return make_invoice(seller_nip=sellers[i], number=f"FV/B{i}/2026", issue_date=today,
                            seed=160 + i)

    big_key = b"K" * (600 * 1024)
    control_source = [("ksef-source", b"\x01" * 1_400_000)]
    script_source = [("ksef-source",
                      (b"billing\r\n<script>alert(1)</script>" * 150_000)[:5_000_000])]
    worker = start_worker(sandbox, tmp_path, "--stages", "validate",
                          KSEF_KEYRING_FILE=_keyring(tmp_path, b"\x16"))
    try:
        _send(sandbox, [(big_key, invoice(0), []),
                        (b"control-source", invoice(1), control_source),
                        (b"script-source", invoice(2), script_source)])
        rejected_msgs = sandbox.consume(REJECTED, 3, timeout_s=180)
        _send(sandbox, [(b"after-the-bad-ones", invoice(3), [("ksef-source", b"erp")])])
        sealed_msgs = sandbox.consume_until(
            SEALED, lambda got: any(read_meta(m.value()).invoice_id == "after-the-bad-ones"
                                    for m in got), timeout_s=120)
        assert worker.proc.poll() is None, worker.log()[-3000:]
    finally:
        code = worker.stop()
    log = worker.log()
    assert code == 0 and "ProduceFailed" not in log and "MessageSizeTooLarge" not in log, \
        log[-3000:]

    assert len(rejected_msgs) == 3, log[-3000:]
    for msg in rejected_msgs:
        assert len(msg.value()) + len(msg.key()) < BOUND
    rejected = {r.invoice_id: r for r in (decode(Rejection, m.value()) for m in rejected_msgs)}
    short_key = "K" * 253 + "..."
    assert {k: r.reason for k, r in rejected.items()} == {
        short_key: "bad-key", "control-source": "bad-header", "script-source": "bad-header"}
    assert rejected[short_key].details["invoice_id_bytes"] == len(big_key)
    assert rejected[short_key].details["truncated"] == ["invoice_id"]
    assert all(r.code == 430 and r.stage == "validate" for r in rejected.values())

    sealed = [read_meta(m.value()) for m in sealed_msgs]
    assert [s.invoice_id for s in sealed] == ["after-the-bad-ones"]
    assert sealed[0].source == "erp"


def test_a_record_the_broker_refuses_for_good_becomes_a_rejection_not_a_crash_loop(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """A sealed topic configured below the catalog (not reconciled): the broker refuses
    the sealed record at flush time. Before, the flush failed on every restart; now the
    invoice is rejected before the commit and the worker goes on."""
    admin = AdminClient({"bootstrap.servers": sandbox.bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, sandbox.name(SEALED), incremental_configs=[
        ConfigEntry("max.message.bytes", "1000",
                    incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
    today = polish_today()
    (seller,) = seller_nips(1, seed=17)
    invoices = [(f"refused-{i}".encode(),
                 make_invoice(seller_nip=seller, number=f"FV/R{i}/2026", issue_date=today,
                              seed=170 + i, profile="typical"))
                for i in range(3)]
    worker = start_worker(sandbox, tmp_path, "--stages", "validate",
                          KSEF_KEYRING_FILE=_keyring(tmp_path, b"\x17"))
    try:
        _send(sandbox, [(key, xml, []) for key, xml in invoices])
        rejected_msgs = sandbox.consume(REJECTED, 3, timeout_s=180)
        assert worker.proc.poll() is None, worker.log()[-3000:]
    finally:
        code = worker.stop()
    log = worker.log()
    assert code == 0 and "ProduceFailed" not in log, log[-3000:]
    rejected = [decode(Rejection, m.value()) for m in rejected_msgs]
    assert sorted(r.invoice_id for r in rejected) == ["refused-0", "refused-1", "refused-2"]
    assert all(r.reason == "too-large" and "MSG_SIZE_TOO_LARGE" in r.message
               and (r.details or {}).get("error") == "RefusedForGood"
               for r in rejected), [r.message for r in rejected]
