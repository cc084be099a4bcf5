"""The status page's live sections (throughput, lag, rejections, rate-limit headroom,
the headline) from made-up numbers, and how they are read from a worker's metrics."""

from __future__ import annotations

import re

from pipeline.metrics import Metrics
from pipeline.modes.snapshot import build_mode_state
from pipeline.modes.status_page import Activity, activity, render
from tests.html_text import text_runs, tile
from tests.unit.modes.builders import announcement, at

NOW = at("2026-03-02 12:00")


def _runs(page: str) -> list[tuple[str, str]]:
    return text_runs(page)


def _tile(page: str, label: str) -> tuple[str, str]:
    """(value, class) of a headline figure."""
    return tile(text_runs(page), label)


LIVE = Activity(
    throughput={"upo": 0.0, "validate": 1234.5, "pack": 12.25},
    lag={"p.ksef.invoices.submitted": 250_000, "p.ksef.invoices.sealed": 0},
    rejections={("validate", "schema"): 1_500, ("upo", "semantic"): 2},
    headroom={("5265877635", "batch"): 0.5, ("5265877635", "session"): 0.05,
              ("1111111111", "batch"): 0.9, ("1111111111", "invoice-status"): 0.2})


def test_headline_summarises_state_pending_overdue_lag_rejections_and_headroom() -> None:
    state = build_mode_state([announcement("f-1", start="2026-03-02 08:00")], NOW)
    by_deadline = [("2026-02-27", "due", "offline24", 7), ("2026-03-11", "due", "emergency",
                                                           1200), ("", "open", "emergency", 3)]
    page = render(state, by_deadline, [0], 1, NOW, live=LIVE)
    assert _tile(page, "KSeF state") == ("FAILURE", "FAILURE")
    assert _tile(page, "pending") == ("1,210", "")
    assert _tile(page, "overdue") == ("7", "bad")
    assert _tile(page, "lag (records)") == ("250,000", "bad")
    assert _tile(page, "rejected, last hour") == ("1,502", "warn")
    assert _tile(page, "lowest headroom") == ("5%", "bad")
    # the headline comes before every section
    assert page.index("class='summary'") < page.index("<h2>")
    # the overdue row is marked in words as well as in colour
    assert re.search(r"<tr class='bad'><td>2026-02-27</td><td>overdue</td>", page)
    assert "<meta http-equiv='refresh'" in page and "<script" not in page


def test_quiet_worker_headline_is_not_alarming() -> None:
    page = render(None, [("2026-03-11", "due", "online", 4)], [0], 1, NOW,
                  live=Activity(throughput={"validate": 0.0}, lag={"t": 9_999}))
    assert _tile(page, "KSeF state") == ("UNKNOWN", "UNKNOWN")
    assert _tile(page, "overdue") == ("0", "ok")
    assert _tile(page, "lag (records)") == ("9,999", "ok")
    assert _tile(page, "rejected, last hour") == ("0", "ok")
    assert "lowest headroom" not in page  # no KSeF requests from this worker


def test_throughput_lag_and_rejection_tables() -> None:
    runs = _runs(render(None, [], [], 4, NOW, live=LIVE))
    text = [t for t, _ in runs]
    # stages in pipeline order, big right-aligned figures with thousands separators
    i = text.index("Throughput (invoices/s, last minute)")
    assert text[i + 3: i + 9] == ["validate", "1,234", "pack", "12.2", "upo", "0.0"]
    assert ("1,234", "num big") in runs
    assert "Consumer lag (250,000 records behind)" in text
    j = text.index("p.ksef.invoices.submitted")
    assert runs[j + 1] == ("250,000", "num big")
    # rejections: the most frequent reason first
    k = text.index("Rejections in the last hour (1,502)")
    assert text[k + 4: k + 10] == ["validate", "schema", "1,500", "upo", "semantic", "2"]


def test_headroom_per_context_lowest_first_and_coloured() -> None:
    page = render(None, [], [], 4, NOW, live=LIVE)
    section = page.split("Rate-limit headroom")[1].split("Credentials")[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", section)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows[1:]]
    assert cells == [["5265877635", "5%", "session", "batch 50%, session 5%"],
                     ["1111111111", "20%", "invoice-status", "batch 90%, invoice-status 20%"]]
    assert "<td class=\"num big bad\">5%</td>" in page
    assert "<td class=\"num big warn\">20%</td>" in page


def test_sections_without_data_say_none() -> None:
    page = render(None, [], [], 4, NOW)
    for heading in ("Throughput (invoices/s, last minute)", "Consumer lag (0 records behind)",
                    "Rejections in the last hour (0)", "Rate-limit headroom of seller contexts"):
        assert f"<h2>{heading}</h2><p>none</p>" in page or f"<h2>{heading}</h2><p>Share" in page
    assert _tile(page, "pending") == ("0", "")


def test_activity_reads_the_metrics_after_their_scrape_time_refresh() -> None:
    clock = [1000.0]
    metrics = Metrics(clock=lambda: clock[0])
    metrics.count_out("validate", 120)
    metrics.rejected("validate", "schema")
    metrics.rejected("validate", "schema")
    metrics.rejected("upo", "semantic")

    def refresh(m: Metrics) -> None:
        m.set_all(m.consumer_lag, {("a", "0"): 3, ("a", "1"): 4, ("b", "0"): 0})
        m.headroom.labels("5265877635", "session").set(0.25)

    metrics.on_scrape("test", refresh)
    live = activity(metrics, ["validate", "pack"])
    assert live.throughput == {"validate": 2.0, "pack": 0.0}
    assert live.lag == {"a": 7, "b": 0}
    assert live.rejections == {("validate", "schema"): 2, ("upo", "semantic"): 1}
    assert live.headroom == {("5265877635", "session"): 0.25}
    clock[0] += 3600 + 60  # an hour later: nothing recent any more
    later = activity(metrics)
    assert later.throughput == {} and later.rejections == {}


def test_a_failing_refresh_leaves_the_page_readable() -> None:
    metrics = Metrics()

    def broken(m: Metrics) -> None:
        raise RuntimeError("no consumer")

    metrics.on_scrape("broken", broken)
    assert activity(metrics).lag == {}
