"""Certificate authentication (XAdES) in the stream, on the real broker and emulator:
sellers on a token, an RSA and an ECDSA P-256 certificate all deliver; the ECDSA
seller's certificate is revoked, so its invoices wait with an alert (none rejected);
`ksef-pipeline credentials enroll` gets it a KSeF certificate and they all get numbers
in the same worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from pipeline.clock import polish_today
from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator.selfsigned import mint
from tests.integration.delivery_harness import build_stack, ingest
from tests.integration.test_delivery import _pipeline_lines
from tests.kafka_harness import REPO, KafkaSandbox
from topics.catalog import ALERTS, OUTCOMES, REJECTED
from topics.codec import decode
from topics.records import Alert, InvoiceOutcome, Rejection


def _numbers(sandbox: KafkaSandbox, ids: set[str], timeout_s: float) -> dict[str, str]:
    def mine(msgs: list[Any]) -> dict[str, str]:
        outs = (decode(InvoiceOutcome, m.value()) for m in msgs)
        return {o.invoice_id: o.ksef_number for o in outs if o.invoice_id in ids}

    return mine(sandbox.consume_until(OUTCOMES, lambda got: len(mine(got)) >= len(ids),
                                      timeout_s))


def test_token_rsa_and_ecdsa_sellers_deliver_and_a_revoked_one_waits_until_enrolled(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    token_nip, rsa_nip, ec_nip = seller_nips(3, seed=2027)
    stack = build_stack(sandbox, tmp_path, [])
    credentials = stack.emulator.write_credentials(
        [token_nip, rsa_nip, ec_nip], tmp_path / "credentials.json",
        {rsa_nip: "rsa", ec_nip: "ec"})
    stack.env["KSEF_CREDENTIALS_FILE"] = str(credentials)
    today = polish_today()

    def invoices(tag: str, nips: list[str], count: int) -> list[tuple[str, bytes]]:
        return [(f"{tag}-{nip}-{i}", make_invoice(seller_nip=nip, number=f"{tag}/{i}",
                                                  issue_date=today, seed=i))
                for nip in nips for i in range(count)]

    first = invoices("CA", [token_nip, rsa_nip, ec_nip], 3)
    worker = stack.worker()
    try:
        ingest(sandbox, first)
        got = _numbers(sandbox, {k for k, _ in first}, 180)
        assert len(got) == len(first), _pipeline_lines([worker])

        ec_cert = x509.load_pem_x509_certificate(
            (tmp_path / "certs" / f"{ec_nip}.crt.pem").read_bytes())
        stack.emulator.admin("certificates/revoke", {"serial": f"{ec_cert.serial_number:X}"})
        later = invoices("CB", [ec_nip, token_nip], 2)
        ingest(sandbox, later)
        token_ids = {k for k, _ in later if token_nip in k}
        assert len(_numbers(sandbox, token_ids, 120)) == 2, _pipeline_lines([worker])
        held = [decode(Alert, m.value()) for m in sandbox.consume_until(
            ALERTS, lambda got: any(
                decode(Alert, m.value()).kind == "credentials-held"
                and decode(Alert, m.value()).seller_nip == ec_nip for m in got), 120)]
        held = [a for a in held if a.kind == "credentials-held" and a.seller_nip == ec_nip]
        assert held and held[0].details["reason"] == "revoked", _pipeline_lines([worker])
        rejected = [decode(Rejection, m.value()) for m in sandbox.consume_until(
            REJECTED, lambda got: False, 3)]
        assert rejected == []

        seal = mint(ec_nip, "ec").write(tmp_path / "seal", "seal")  # a qualified seal
        env = {**stack.sandbox.env(**stack.env)}
        enrolled = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "credentials", "enroll", "--nip", ec_nip,
             "--type", "Authentication", "--auth-cert", str(seal[0]),
             "--auth-key", str(seal[1])],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
        entry = json.loads(credentials.read_text())["contexts"][ec_nip]
        assert entry["certificate"] != f"certs/{ec_nip}.crt.pem", entry
        ec_ids = {k for k, _ in later if ec_nip in k}
        assert len(_numbers(sandbox, ec_ids, 180)) == 2, _pipeline_lines([worker])
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
        stack.emulator.stop()
    issuers = {line for line in enrolled.stdout.splitlines() if "serial" in line.lower()}
    assert issuers, enrolled.stdout
