"""`curl /metrics` during `ops/demo`: every family is there, and the counts match the
demo's own summary (issue 15, acceptance 1).

The demo runs as a user runs it (two workers, good invoices and defective ones, no
`--exit-when-done`: it keeps running after its summary line, as the operator would
look at it); the workers' expositions are summed as Prometheus would sum them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pipeline.metrics import DEADLINE_BUCKETS, KSEF_STATES, Metrics

REPO = Path(__file__).resolve().parents[2]
GOOD, BAD, WORKERS = 150, 12, 2
SUMMARY = re.compile(r"submitted=(\d+) accepted=(\d+) rejected=(\d+)")
WORKER = re.compile(r"worker (\d+): (http://127\.0\.0\.1:\d+)/")
SETTLE_S = 60.0  # tombstones forwarded between workers reach their owner within this


def _families() -> set[str]:
    """Every family name a worker declares (as the text format names them)."""
    return {f.name for f in Metrics().registry.collect()}


def _scrape(urls: list[str]) -> dict[str, Counter[tuple[tuple[str, str], ...]]]:
    """sample name -> labels -> value, summed over the workers; plus `__families__`."""
    out: dict[str, Counter[tuple[tuple[str, str], ...]]] = {}
    families: Counter[tuple[tuple[str, str], ...]] = Counter()
    for url in urls:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain")
            text = answer.read().decode()
        for family in text_string_to_metric_families(text):
            families[(("name", family.name), ("url", url))] += 1
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                out.setdefault(sample.name, Counter())[labels] += sample.value
    out["__families__"] = families
    return out


def _total(scrape: dict[str, Counter[tuple[tuple[str, str], ...]]], name: str,
           **labels: str) -> float:
    want = set(labels.items())
    return sum(v for k, v in scrape.get(name, Counter()).items() if want <= set(k))


def test_metrics_during_a_demo_match_its_summary(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1", KSEF_DEADLINE_CHECK_S="2")
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the demo starts its own broker
    demo = subprocess.Popen(
        [sys.executable, "-m", "pipeline.demo", "--invoices", str(GOOD), "--bad", str(BAD),
         "--sellers", "2", "--workers", str(WORKERS), "--linger", "1",
         "--var", str(tmp_path / "demo")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    lines: list[str] = []
    try:
        urls: dict[int, str] = {}
        summary = None
        reasons: dict[str, int] = {}
        assert demo.stdout is not None
        for line in demo.stdout:  # each line is an event: no polling
            lines.append(line)
            if found := WORKER.search(line):
                urls[int(found[1])] = found[2]
            if found := SUMMARY.search(line):
                summary = tuple(int(g) for g in found.groups())
            if line.startswith("rejected by reason:"):
                reasons = {k: int(v) for k, v in
                           (part.split("=") for part in line.split(":", 1)[1].split())}
                break
        assert summary is not None and reasons, "".join(lines[-40:])
        submitted, accepted, rejected = summary
        assert (submitted, accepted + rejected) == (GOOD + BAD, GOOD + BAD), summary
        assert sum(reasons.values()) == rejected

        # The outcome and rejection counters are counted by each worker's deadline tracker
        # as it reads the outcome topics, beside the demo's own reader of the same topics:
        # the summary line can come first. Scrape until they caught up (or the deadline).
        def counted(scrape: dict[str, Counter[tuple[tuple[str, str], ...]]]
                    ) -> tuple[float, float, dict[str, int]]:
            by_reason = Counter[str]()
            for labels, value in scrape.get("ksef_rejections_total", Counter()).items():
                by_reason[dict(labels)["reason"]] += int(value)
            return (_total(scrape, "ksef_outcomes_total", result="accepted"),
                    _total(scrape, "ksef_outcomes_total", result="rejected"), dict(by_reason))

        deadline = time.monotonic() + SETTLE_S
        while True:
            scrape = _scrape(list(urls.values()))
            if (counted(scrape) == (accepted, rejected, reasons)
                    or time.monotonic() > deadline):
                break
            time.sleep(0.5)  # the trackers read Kafka; there is no event here to await
        # every family on every worker
        declared = _families()
        for url in urls.values():
            seen = {dict(k)["name"] for k in scrape["__families__"] if dict(k)["url"] == url}
            assert declared <= seen, (url, sorted(declared - seen))
        # the demo's own totals
        assert _total(scrape, "ksef_outcomes_total", result="accepted") == accepted
        assert _total(scrape, "ksef_outcomes_total", result="rejected") == rejected
        by_reason = Counter[str]()
        for labels, value in scrape["ksef_rejections_total"].items():
            by_reason[dict(labels)["reason"]] += int(value)
        assert dict(by_reason) == reasons
        assert _total(scrape, "ksef_stage_invoices_in_total", stage="validate") == submitted
        assert _total(scrape, "ksef_stage_invoices_out_total", stage="upo") == accepted
        assert _total(scrape, "ksef_stage_invoices_out_total", stage="submit") == accepted
        assert _total(scrape, "ksef_batch_parts_uploaded_total") >= 1
        assert _total(scrape, "ksef_upo_wait_seconds_count") >= 1
        assert _total(scrape, "ksef_api_requests_total", endpoint="POST batch-open") >= 2
        assert _total(scrape, "ksef_state", state="AVAILABLE") >= 1
        assert {dict(k)["state"] for k in scrape["ksef_state"]} == set(KSEF_STATES)
        assert _total(scrape, "ksef_latarnia_reachable") >= 1
        assert len(scrape["ksef_credential_expiry_seconds"]) == 2  # one per seller context
        assert all(v > 0 for v in scrape["ksef_credential_expiry_seconds"].values())
        assert {dict(k)["bucket"] for k in scrape["ksef_pending_invoices"]} == set(
            DEADLINE_BUCKETS)
        assert _total(scrape, "ksef_table_recovery", state="ready") == WORKERS
        # Every sealed invoice's latency is observed once (by the worker holding it), and
        # nothing stays pending: both wait for tombstones forwarded between the workers.
        sealed = accepted + reasons.get("duplicate", 0)
        deadline = time.monotonic() + SETTLE_S
        while True:
            scrape = _scrape(list(urls.values()))
            observed = _total(scrape, "ksef_invoice_latency_seconds_count")
            pending = _total(scrape, "ksef_pending_invoices")
            if (observed, pending) == (sealed, 0) or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # Kafka delivers the tombstones; there is no event here to await
        assert (observed, pending) == (sealed, 0)
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            raise
