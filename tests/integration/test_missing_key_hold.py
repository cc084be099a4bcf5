"""A sealed invoice under a key the pack worker's keyring lacks waits, with an alert naming
the key, and is packed once the key is added to the keyring file, without a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from pipeline.clock import iso, polish_today
from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.ksef.keyring import Keyring
from pipeline.ksef.qr import QrEnvironment
from pipeline.runtime.keyring_file import new_keyring_json
from pipeline.stages.s1_validate_seal.sealing import SealConfig, seal_invoice
from pipeline.stages.s1_validate_seal.submission import (
    AttachmentPolicy,
    CheckedInvoice,
    Submission,
    check_submission,
)
from tests.integration.delivery_harness import build_stack
from tests.kafka_harness import KafkaSandbox
from topics.catalog import ALERTS, PACKED, REJECTED, SEALED
from topics.codec import decode
from topics.records import Alert, KafkaRef, PackedBatch


def sealed(invoice_id: str, nip: str, number: str, ring: Keyring) -> bytes:
    xml = make_invoice(seller_nip=nip, number=number, issue_date=polish_today(), seed=5)
    sub = Submission(invoice_id.encode(), xml, {}, KafkaRef("t", 0, 1), iso())
    checked = check_submission(sub, InvoiceChecker(), polish_today(), AttachmentPolicy())
    assert isinstance(checked, CheckedInvoice), checked
    return seal_invoice(checked, SealConfig(ring, QrEnvironment.TEST, {}),
                        AnnouncementHistory()).value


def packed_ids(msgs: list[Any]) -> set[str]:
    return {inv.invoice_id for m in msgs for inv in decode(PackedBatch, m.value()).invoices}


def alerts_of(msgs: list[Any], kind: str) -> list[Alert]:
    return [a for a in (decode(Alert, m.value()) for m in msgs) if a.kind == kind]


def test_missing_key_holds_with_an_alert_then_packs_after_the_keyring_gains_it(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    (nip,) = seller_nips(1, seed=31)
    stack = build_stack(sandbox, tmp_path, [nip], KSEF_KEYRING_CHECK_S="1",
                        KSEF_PACK_LINGER_S="1")
    ring_file = Path(stack.env["KSEF_KEYRING_FILE"])
    known = Keyring.from_json(ring_file.read_bytes())
    k9_json = new_keyring_json("k9")  # a sealer's newer key, not copied here yet
    k9 = Keyring.from_json(k9_json)
    worker = stack.worker("--stages", "pack")
    try:
        sandbox.produce(SEALED, [(nip.encode(), sealed("held-k9", nip, "FV/K9/1", k9)),
                                 (nip.encode(), sealed("ok-k1", nip, "FV/K1/1", known))])
        first = sandbox.consume_until(PACKED, lambda got: "ok-k1" in packed_ids(got),
                                      timeout_s=120)
        assert "held-k9" not in packed_ids(first), "packed without its key?"
        rejected = sandbox.read_to_end(REJECTED, timeout_s=10)
        assert rejected == [], f"a missing key rejected: {[m.value() for m in rejected]}"
        missing = alerts_of(sandbox.consume_until(
            ALERTS, lambda got: bool(alerts_of(got, "keyring-key-missing")), timeout_s=60),
            "keyring-key-missing")
        assert missing[0].details["key_id"] == "k9", missing
        assert "'k9'" in missing[0].message and missing[0].severity == "critical"

        # The operator copies the sealers' keyring here: k9 joins, k1 stays active.
        doc = orjson.loads(ring_file.read_bytes())
        doc["keys"].update(orjson.loads(k9_json)["keys"])
        staged = ring_file.with_name("keyring.json.new")
        staged.write_bytes(orjson.dumps(doc))
        staged.chmod(0o600)
        staged.replace(ring_file)  # atomic, as `keyring rotate` writes it

        later = sandbox.consume_until(PACKED, lambda got: "held-k9" in packed_ids(got),
                                      timeout_s=120)
        assert packed_ids(later) == {"ok-k1", "held-k9"}
        # the alert is sent before the held invoice is packed, but to another topic: wait
        # for it rather than take what the topic holds at this moment
        found = alerts_of(sandbox.consume_until(
            ALERTS, lambda got: bool(alerts_of(got, "keyring-key-found")), timeout_s=60),
            "keyring-key-found")
        assert found and found[0].details["key_id"] == "k9"
        assert sandbox.read_to_end(REJECTED, timeout_s=10) == []
    finally:
        code = worker.stop()
        stack.emulator.stop()
    assert code == 0, worker.log()[-3000:]
    assert "keyring re-read" in worker.log()
