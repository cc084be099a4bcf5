"""Operator views on the real broker: `deadlines`, the worker's HTTP endpoint and status
page, and `replay --from-rejected` after the cause of a rejection was fixed."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from pipeline.clock import polish_today
from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.ksef.calendar import next_business_day
from pipeline.ksef.deadlines import compute_deadline
from pipeline.ksef.modes import Mode
from pipeline.modes.snapshot import history_from_mode_state
from tests.integration.modes.helpers import Watcher
from tests.integration.modes.test_mode_state import (
    FAST,
    SELLER,
    _first_records,
    _latest,
    _produce_first,
    _sealed,
)
from tests.kafka_harness import REPO, KafkaSandbox, Worker, start_worker
from topics.catalog import ALERTS, DEADLINES, MODE, OUTCOMES, REJECTED, SEALED, SUBMITTED
from topics.codec import encode, from_dict
from topics.records import (
    Alert,
    DeadlineRecord,
    InvoiceOutcome,
    ModeState,
    Rejection,
    SealedInvoice,
)

OTHER_SELLER = "1111111111"


def _cli(sandbox: KafkaSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO,
                          env=sandbox.env(), capture_output=True, text=True, timeout=180)


def _outcome(invoice_id: str) -> InvoiceOutcome:
    now = dt.datetime.now(dt.UTC).isoformat()
    return InvoiceOutcome(invoice_id=invoice_id, seller_nip=SELLER, invoice_number="FV/1",
                          ksef_number="5265877635-20260303-0100001AF629-AF",
                          acquisition_date=now, invoicing_mode="offline", session_ref="s",
                          sha256="aGFzaA==", recorded_at=now)


OPERATOR_TOKEN = "integration-operator-token-0123456789"


def _token_file(tmp_path: Path) -> dict[str, str]:
    """The worker's KSEF_OPERATOR_TOKEN_FILE, naming the operator `rehearsal`."""
    path = tmp_path / "operator-tokens"
    path.write_text(f"rehearsal:{OPERATOR_TOKEN}\n")
    path.chmod(0o600)
    return {"KSEF_OPERATOR_TOKEN_FILE": str(path)}


def _get_json(worker: Worker, path: str) -> Any:
    try:
        status, raw = _web(worker, path)
    except OSError:  # the web server is not up yet (urllib's URLError is an OSError)
        return None
    return orjson.loads(raw) if status == 200 else None


def _worker_ready(worker: Worker, partitions: int, timeout_s: float = 120
                  ) -> ModeState | None:
    """The worker's mode state once its tracker holds every partition of ksef.deadlines."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending, mode = _get_json(worker, "/ksef/pending"), _get_json(worker, "/ksef/mode")
        if pending and len(pending["partitions"]) == partitions and mode is not None:
            return from_dict(ModeState, mode)
        assert time.monotonic() < deadline, f"worker not ready: {pending!r}"
        time.sleep(0.2)  # the worker's readiness has no event to await from outside


def _wait_until_pending(worker: Worker, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    raw: bytes = b"no answer yet"
    while True:
        try:
            status, raw = _web(worker, "/ksef/pending")
        except OSError:  # the web server is not up yet (urllib's URLError is an OSError)
            status = 0
        if status == 200 and orjson.loads(raw)["pending"] >= count:
            return
        assert time.monotonic() < deadline, f"the tracker holds {raw!r}, not {count} invoices"
        time.sleep(0.2)  # the worker's book has no event to await from outside


def _web(worker: Worker, path: str, body: dict[str, Any] | None = None,
         token: str | None = OPERATOR_TOKEN, content_type: str = "application/json",
         ) -> tuple[int, bytes]:
    args = list(worker.proc.args)  # type: ignore[arg-type]
    port = args[args.index("--web-port") + 1]
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET",
        data=None if body is None else json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_deadlines_command_endpoint_and_status_page(sandbox: KafkaSandbox,
                                                    tmp_path: Path) -> None:
    deadlines = Watcher(sandbox, DEADLINES, DeadlineRecord)
    modes = Watcher(sandbox, MODE, ModeState)
    invoices = [_sealed(f"s-{i}", "2026-03-03", "offline24") for i in range(5)]
    today = polish_today()
    invoices += [_sealed(f"o-{i}", today.isoformat(), "offline24") for i in range(3)]
    invoices = [s if s.invoice_id.startswith("s") else
                dataclasses.replace(s, seller_nip=OTHER_SELLER) for s in invoices]
    alerts = Watcher(sandbox, ALERTS, Alert)
    worker = start_worker(sandbox, tmp_path, "--stages", "mode", **FAST, **_token_file(tmp_path))
    try:
        # First records as a validate worker writes them: with the mode state it follows
        # (the same as the tracker's, so the tracker has nothing to correct), once the
        # tracker holds its partitions.
        state = _worker_ready(worker, sandbox.partitions)
        _produce_first(sandbox, _first_records(invoices, state))
        deadlines.wait(lambda seen: len(_latest(seen)) == len(invoices), 120, "records")
        _wait_until_pending(worker, len(invoices))

        sandbox.produce(OUTCOMES, [(b"s-0", encode(_outcome("s-0")))])
        sandbox.produce(REJECTED, [(b"s-1", encode(Rejection(
            invoice_id="s-1", stage="upo", code=450, reason="semantic", message="m",
            rejected_at=dt.datetime.now(dt.UTC).isoformat())))])
        deadlines.wait(lambda seen: {s.key for s in seen if s.value is None} == {"s-0", "s-1"},
                       60, "tombstones of the settled invoices")

        out = _cli(sandbox, "deadlines", "--seller", SELLER, "--json")
        assert out.returncode == 0, out.stderr
        listed = json.loads(out.stdout)
        assert sorted(r["invoice_id"] for r in listed) == [f"s-{i}" for i in range(2, 5)]
        assert {r["deadline"] for r in listed} == {"2026-03-04"}
        out = _cli(sandbox, "deadlines", "--due-before", "2026-03-09")
        assert out.returncode == 0, out.stderr
        assert "3 pending invoice(s) (due 3)" in out.stdout and "o-0" not in out.stdout

        # a window early today (it moves the deadlines of today's invoices); the refusals
        # are checked on one that began an hour ago, backdated whatever the time of day
        body: dict[str, Any] = {"kind": "failure", "start": f"{today}T00:00",
                                "end": f"{today}T00:10", "id": "http-1"}
        hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        backdated = {**body, "start": hour_ago.isoformat(),
                     "end": (hour_ago + dt.timedelta(minutes=10)).isoformat()}
        for token, ctype, refused in ((None, "application/json", 401),
                                      ("wrong-token-0123456789abc", "application/json", 401),
                                      (OPERATOR_TOKEN, "text/plain", 415),
                                      (OPERATOR_TOKEN, "application/json", 422)):
            status, raw = _web(worker, "/ksef/announcements", backdated, token, ctype)
            assert status == refused, (token, ctype, status, raw)
        status, raw = _web(worker, "/ksef/announcements", {**body, "allow_backdate": True})
        assert status == 201, raw
        assert orjson.loads(raw)["source"] == "operator"
        audit = alerts.first(lambda a: a.kind == "operator-change", 60, "the audit record")
        assert audit.details["by"] == "rehearsal" and audit.details["id"] == "http-1"
        assert audit.details["allow_backdate"] is True and audit.details["at"]
        for faust_page in ("/table/", "/router/", "/router/topics"):
            assert _web(worker, faust_page)[0] == 404, faust_page
        status, raw = _web(worker, "/ksef/announcements", {"kind": "failure"})
        assert status == 400 and b"needs 'start'" in raw
        state = modes.first(lambda s: any(a.id == "http-1" for a in s.announcements), 60,
                            "http-1 in ksef.mode")
        due = compute_deadline(today, Mode.OFFLINE24, history_from_mode_state(state)).due
        assert due is not None and due > next_business_day(today)
        moved = deadlines.first(lambda r: r.invoice_id == "o-0" and r.deadline == due.isoformat(),
                                60, "the deadline the failure moved")
        assert "http-1" in moved.basis

        deadlines.wait(lambda seen: all(_latest(seen)[f"o-{i}"].deadline == due.isoformat()
                                        for i in range(3)), 30, "all three moved")
        out = _cli(sandbox, "deadlines", "--check")
        assert out.returncode == 0 and "6 of 6 record(s) agree" in out.stdout, out.stdout

        status, page = _web(worker, "/ksef/status")
        assert status == 200 and b"http-1" in page and due.isoformat().encode() in page
        status, raw = _web(worker, "/ksef/pending")
        assert status == 200 and orjson.loads(raw)["pending"] == len(invoices) - 2
    finally:
        deadlines.close()
        modes.close()
        alerts.close()
        assert worker.stop() == 0, worker.log()[-3000:]


def test_replay_after_the_cause_was_fixed(sandbox: KafkaSandbox, tmp_path: Path) -> None:
    rejected = Watcher(sandbox, REJECTED, Rejection)
    sealed = Watcher(sandbox, SEALED, SealedInvoice)
    keyring = tmp_path / "keyring.json"
    keyring.write_bytes(orjson.dumps({"active": "k1", "keys": {
        "k1": base64.b64encode(b"\x04" * 32).decode()}}))
    keyring.chmod(0o600)  # a keyring others may read is refused
    env = {"KSEF_KEYRING_FILE": str(keyring), **FAST}
    nip = seller_nips(1, seed=9)[0]
    xml = make_invoice(seller_nip=nip, number="FV/ATT/1", issue_date=polish_today(),
                       attachment=True)
    worker = start_worker(sandbox, tmp_path, "--stages", "validate", **env)
    try:
        sandbox.produce(SUBMITTED, [(b"att-1", xml)], headers={"ksef-source": "billing-x"})
        rejection = rejected.first(lambda r: r.invoice_id == "att-1", 120, "the rejection")
        assert rejection.reason == "attachments-not-allowed" and rejection.origin is not None
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    dry = _cli(sandbox, "replay", "--from-rejected", "--reason", "415", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("att-1\t"), dry.stderr
    since = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    none = _cli(sandbox, "replay", "--from-rejected", "--since", since, "--dry-run")
    assert none.returncode == 0 and none.stdout == "" and "0 invoice(s)" in none.stderr

    worker = start_worker(sandbox, tmp_path, "--stages", "validate",
                          KSEF_ATTACHMENT_SELLERS="*", **env)
    try:
        out = _cli(sandbox, "replay", "--from-rejected", "--reason", "attachments-not-allowed")
        assert out.returncode == 0 and "replayed 1 invoice(s)" in out.stderr, out.stderr
        invoice = sealed.first(lambda s: s.invoice_id == "att-1", 120, "the replayed invoice")
        assert invoice.has_attachments and invoice.source == "billing-x"
    finally:
        rejected.close()
        sealed.close()
        assert worker.stop() == 0, worker.log()[-3000:]
