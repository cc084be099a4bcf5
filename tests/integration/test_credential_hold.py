"""Contexts without working credentials wait instead of being rejected, on the real
broker and the emulator: a seller with no credentials gets a `no-credentials` alert and
its invoices get KSeF numbers once its token is added to the file (same worker, no
restart); another one's held invoices are rejected by `ksef-pipeline held reject`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main
from pipeline.clock import polish_today
from pipeline.demo.samples import make_invoice, seller_nips
from tests.integration.delivery_harness import build_stack, ingest
from tests.integration.test_delivery import _pipeline_lines
from tests.kafka_harness import KafkaSandbox
from topics.catalog import ALERTS, CONTROL, OUTCOMES, REJECTED
from topics.codec import decode
from topics.records import Alert, HeldRelease, InvoiceOutcome, Rejection

PER_SELLER = 4


def _alerts(sandbox: KafkaSandbox, kind: str, sellers: set[str], timeout_s: float
            ) -> dict[str, Alert]:
    def found(msgs: list[Any]) -> dict[str, Alert]:
        alerts = (decode(Alert, m.value()) for m in msgs)
        return {a.seller_nip: a for a in alerts if a.kind == kind and a.seller_nip in sellers}

    return found(sandbox.consume_until(ALERTS, lambda got: set(found(got)) >= sellers,
                                       timeout_s))


def _outcomes_of(sandbox: KafkaSandbox, seller: str, timeout_s: float) -> set[str]:
    def mine(msgs: list[Any]) -> set[str]:
        return {o.invoice_id for o in (decode(InvoiceOutcome, m.value()) for m in msgs)
                if o.seller_nip == seller}

    return mine(sandbox.consume_until(OUTCOMES, lambda got: len(mine(got)) >= PER_SELLER,
                                      timeout_s))


def test_held_contexts_wait_then_deliver_after_a_token_is_added_or_are_released(
        sandbox: KafkaSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ready, late, released = seller_nips(3, seed=1313)
    stack = build_stack(sandbox, tmp_path, [ready])  # tokens.json: `ready` only
    today = polish_today()
    items = [(f"ch-{nip}-{i}", make_invoice(seller_nip=nip, number=f"CH/{i}",
                                            issue_date=today, seed=i))
             for nip in (ready, late, released) for i in range(PER_SELLER)]
    worker = stack.worker()
    try:
        ingest(sandbox, items)
        assert len(_outcomes_of(sandbox, ready, 180)) == PER_SELLER, _pipeline_lines([worker])
        held = _alerts(sandbox, "credentials-held", {late, released}, 120)
        assert set(held) == {late, released}, _pipeline_lines([worker])
        assert {a.details["reason"] for a in held.values()} == {"no-credentials"}
        assert all(a.severity == "critical" for a in held.values())

        for name, value in sandbox.env().items():
            if name.startswith(("KAFKA_", "KSEF_TOPIC_")):
                monkeypatch.setenv(name, value)
        assert main(["held", "reject", "--nip", released, "--note", "test"]) == 0
        (control,) = sandbox.consume(CONTROL, 1, timeout_s=60)  # a loaded machine
        assert control.key() == f"release:{released}".encode()
        assert decode(HeldRelease, control.value()).note == "test"
        rejected = [decode(Rejection, m.value()) for m in sandbox.consume(
            REJECTED, PER_SELLER, timeout_s=60)]
        assert sorted(r.invoice_id for r in rejected) == sorted(
            k for k, _ in items if k.startswith(f"ch-{released}-")), _pipeline_lines([worker])
        assert {(r.reason, r.code, r.stage) for r in rejected} == {
            ("no-credentials", 410, "submit")}

        stack.emulator.write_tokens([ready, late], tmp_path / "tokens.json")
        assert len(_outcomes_of(sandbox, late, 120)) == PER_SELLER, _pipeline_lines([worker])
        recovered = _alerts(sandbox, "credentials-recovered", {late}, 30)
        assert recovered[late].details["reason"] == "no-credentials"
        late_rejections = [m for m in sandbox.consume_until(REJECTED, lambda got: False, 2)
                           if decode(Rejection, m.value()).seller_nip != released]
        assert late_rejections == []
        assert "credential files changed: held contexts are tried again" in worker.log()
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
