"""The status page of a real worker as headless Chromium renders it: the headline, every
section, and figures that agree with the worker's own `/metrics` and `/ksef/pending`
after it validated a few invoices and rejected one.

KSEF_SAVE_SCREENSHOT=1 keeps the screenshot as docs/img/status-page.png (the picture in
the documentation is taken from a demo worker instead: `python -m tests.chromium`)."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from pipeline.clock import polish_today
from pipeline.demo.samples import make_invoice, seller_nips
from tests.chromium import WINDOW, dump_dom, screenshot
from tests.html_text import text_runs, tile
from tests.integration.modes.helpers import Watcher
from tests.integration.modes.test_mode_state import FAST
from tests.integration.modes.test_operator_views import (
    _wait_until_pending,
    _web,
    _worker_ready,
)
from tests.kafka_harness import REPO, KafkaSandbox, Worker, start_worker
from topics.catalog import REJECTED, SUBMITTED
from topics.records import Rejection

VALID = 5
SECTIONS = ("KSeF status", "KSeF mode", "Announcements and observed outages",
            "Throughput (invoices/s, last minute)", "Credentials of seller contexts",
            "Rate-limit headroom of seller contexts")


def _url(worker: Worker, path: str) -> str:
    args = [str(a) for a in worker.proc.args]  # type: ignore[union-attr]
    return f"http://127.0.0.1:{args[args.index('--web-port') + 1]}{path}"


@dataclass(frozen=True)
class Readings:
    out: dict[str, int]  # stage -> invoices passed on (counter)
    rejected: int  # rejections counted (counter)
    lag: dict[str, int]  # topic -> records behind (gauge, summed over partitions)
    pending: int
    mode: str


def _readings(worker: Worker) -> Readings:
    """What the page's figures must agree with: the worker's counters and gauges on
    /metrics, its pending count and its mode."""
    status, raw = _web(worker, "/metrics", token=None)
    assert status == 200, raw[:500]
    out: Counter[str] = Counter()
    rejected = 0.0
    lag: Counter[str] = Counter()
    for family in text_string_to_metric_families(raw.decode()):
        for sample in family.samples:
            if sample.name == "ksef_stage_invoices_out_total":
                out[sample.labels["stage"]] += int(sample.value)
            elif sample.name == "ksef_rejections_total":
                rejected += sample.value
            elif sample.name == "ksef_consumer_lag_records":
                lag[sample.labels["topic"]] += int(sample.value)
    status, pending = _web(worker, "/ksef/pending", token=None)
    assert status == 200
    status, mode = _web(worker, "/ksef/mode", token=None)
    assert status == 200
    return Readings(dict(out), int(rejected), dict(lag), orjson.loads(pending)["pending"],
                    orjson.loads(mode)["state"])


def _settled_page(worker: Worker, profile: Path, timeout_s: float = 120
                  ) -> tuple[list[tuple[str, str]], Readings]:
    """The page's text as Chromium renders it, once nothing moves: no lag before and
    the same readings before and after the page was loaded."""
    deadline = time.monotonic() + timeout_s
    while True:
        before = _readings(worker)
        if not any(before.lag.values()):
            runs = text_runs(dump_dom(_url(worker, "/ksef/status"), profile))
            if _readings(worker) == before:
                return runs, before
        assert time.monotonic() < deadline, f"the worker did not settle: {before!r}"
        time.sleep(0.5)  # nothing to await from outside the worker


def test_status_page_in_chromium(sandbox: KafkaSandbox, tmp_path: Path) -> None:
    rejected = Watcher(sandbox, REJECTED, Rejection)
    nip = seller_nips(1, seed=11)[0]
    today = polish_today()
    invoices = [(f"page-{i}".encode(), make_invoice(seller_nip=nip, number=f"FV/PAGE/{i}",
                                                    issue_date=today, seed=i))
                for i in range(VALID)]
    # attachments are refused unless the seller is allowed them: one rejection
    invoices.append((b"page-att", make_invoice(seller_nip=nip, number="FV/PAGE/ATT",
                                               issue_date=today, attachment=True)))
    worker = start_worker(sandbox, tmp_path, "--stages", "validate,mode", **FAST)
    try:
        _worker_ready(worker, sandbox.partitions)
        sandbox.produce(SUBMITTED, invoices, headers={"ksef-source": "page-test"})
        rejection = rejected.first(lambda r: r.invoice_id == "page-att", 120, "the rejection")
        assert rejection.reason == "attachments-not-allowed"
        _wait_until_pending(worker, VALID)
        # the worker counts the rejection when its own reader of the rejected topic gets
        # to it, at its own pace (the watcher above may be first, and a lag gauge that
        # has not seen the new end yet reads 0): wait for what is asserted below
        deadline = time.monotonic() + 120
        while _readings(worker).rejected < 1:
            assert time.monotonic() < deadline, f"the rejection never counted: {_readings(worker)}"
            time.sleep(0.5)  # nothing to await from outside the worker

        runs, seen = _settled_page(worker, tmp_path / "chromium-profile")
        text = [t for t, _ in runs]
        for heading in SECTIONS:
            assert heading in text, (heading, text)
        assert seen.pending == VALID
        # the worker counted them (so the figures compared below are not all zero)
        assert seen.out.get("validate") == VALID and seen.rejected == 1, seen
        i = text.index(f"Pending invoices by deadline ({VALID})")
        assert text[i + 1] == "ksef.deadlines partitions 0, 1, 2, 3 of 4 on this worker"

        # the headline
        assert tile(runs, "KSeF state") == (seen.mode, seen.mode)
        assert tile(runs, "pending") == (str(VALID), "")
        assert tile(runs, "overdue") == ("0", "ok")  # issued today: due days from now
        assert tile(runs, "lag (records)") == ("0", "ok")
        n_rejected = seen.rejected
        assert tile(runs, "rejected, last hour") == (
            str(n_rejected), "warn" if n_rejected else "ok")
        assert "lowest headroom" not in text  # no submit stage: no KSeF requests

        # throughput: the stages this worker runs, as its counters say (all within the
        # last minute); the stages it does not run are not listed
        start = text.index("Throughput (invoices/s, last minute)")
        table = text[start + 1: text.index(f"Rejections in the last hour ({seen.rejected})")]
        validated = seen.out.get("validate", 0)
        assert table[:4] == ["stage", "invoices/s", "validate", f"{validated / 60:,.1f}"]
        assert "pack" not in table and "upo" not in table

        # lag: every topic this worker reads, from its gauges, summed over partitions
        lag = seen.lag
        assert sandbox.name(SUBMITTED) in lag, lag
        assert "Consumer lag (0 records behind)" in text
        for topic in lag:
            assert runs[text.index(topic) + 1] == ("0", "num big"), topic
        assert f"Rejections in the last hour ({n_rejected})" in text

        keep = os.environ.get("KSEF_SAVE_SCREENSHOT") == "1"
        png = REPO / "docs/img/status-page.png" if keep else tmp_path / "status-page.png"
        size = screenshot(_url(worker, "/ksef/status"), png, tmp_path / "chromium-profile")
        assert size == WINDOW and png.stat().st_size > 10_000
    finally:
        rejected.close()
        assert worker.stop() == 0, worker.log()[-3000:]
