"""`ops/bench e2e`'s figures from the demo's /proc samples and the bare-work timings."""

from __future__ import annotations

import itertools
from pathlib import Path

from pipeline.bench.e2e_bench import (
    bare_figures,
    bare_work,
    medians,
    read_usage,
    rss_ratio,
    spread_table,
    table,
    usage_figures,
)

USAGE = {"seconds": 10.0, "cpu_ms": {"workers": 5000.0, "broker": 3000.0, "emulator": 1000.0},
         "pids": {"workers": [11], "broker": [12], "emulator": [13]},
         "restarted": {"workers": False, "broker": False, "emulator": False},
         "peak_rss_kb": {"11": 204800}}


def test_usage_figures_per_invoice_and_cores() -> None:
    cpu = usage_figures(USAGE, invoices=1000)
    assert cpu["workers_cpu_ms"] == 5.0 and cpu["workers_cores"] == 0.5
    assert cpu["broker_cpu_ms"] == 3.0 and cpu["emulator_cpu_ms"] == 1.0
    assert cpu["worker_peak_rss_mb"] == 200.0 and "restarted" not in cpu
    assert usage_figures(None, 1000) == {}
    restarted = usage_figures({**USAGE, "restarted": {"workers": True}}, 1000)
    assert restarted["restarted"] == "workers"


def test_bare_figures_ratio_is_workers_plus_broker_over_bare() -> None:
    bare = {"check": 0.3, "sha256": 0.01, "deflate": 0.08, "aes_gcm": 0.01, "total": 0.4}
    out = bare_figures(bare, usage_figures(USAGE, invoices=1000))
    assert out["bare_ms"] == 0.4 and out["bare_check_ms"] == 0.3
    assert out["cpu_over_bare"] == 20.0  # (5 + 3) / 0.4
    assert "cpu_over_bare" not in bare_figures(bare, {})
    assert bare_figures(None, {}) == {}


def test_bare_work_times_each_piece_over_every_invoice() -> None:
    from pipeline.bench.e2e_bench import bare_invoices

    ticks = itertools.count()  # every clock read advances one second
    per = bare_work(bare_invoices(4, 2), repeats=1, clock=lambda: float(next(ticks)))
    assert per == {"check": 250.0, "sha256": 250.0, "deflate": 250.0, "aes_gcm": 250.0,
                   "total": 1000.0}  # 1 s over 4 invoices


def test_table_and_read_usage(tmp_path: Path) -> None:
    result = {"submitted": 1000, "sellers": 3, "workers": 1, "load_before": "cpus=2 load=1,1,1",
              "load_after": "cpus=2 load=2,1,1", "invoices_per_s": 50.0,
              **usage_figures(USAGE, invoices=1000)}
    lines = table(result).splitlines()
    assert lines[0].startswith("e2e: 1000 invoices, 3 sellers, 1 worker(s)")
    assert any("worker(s)" in line and "5.0" in line and "(0.5 cores)" in line
               for line in lines[1:])
    assert not any("bare" in line for line in lines)  # absent figures are left out
    assert read_usage(tmp_path / "missing.json") is None
    (tmp_path / "u.json").write_text('{"seconds": 1}')
    assert read_usage(tmp_path / "u.json") == {"seconds": 1}


def _run(rate: float, ratio: float, bare: float | None = 0.4) -> dict[str, object]:
    return {"submitted": 10000, "sellers": 3, "workers": 1, "invoices_per_s": rate,
            "cpu_over_bare": ratio, "bare_ms": bare}


def test_several_runs_give_each_figure_its_median_and_spread() -> None:
    runs = [_run(300.0, 6.8), _run(380.0, 5.6), _run(350.0, 6.1, bare=None)]
    figures = medians(runs)
    assert figures["invoices_per_s"] == (350.0, 300.0, 380.0)
    assert figures["cpu_over_bare"] == (6.1, 5.6, 6.8)
    assert "bare_ms" not in figures  # one run lacks it: no median of the others
    text = spread_table(runs)
    assert text.splitlines()[0] == "e2e: 3 runs of 10000 invoices, 3 sellers, 1 worker(s)"
    assert "goal: median cpu_over_bare <= 6.0: not met" in text
    assert "goal: median invoices_per_s >= 600.0: not met" in text
    assert "goal: median cpu_over_bare <= 6.0: met" in spread_table(runs[1:2] * 2)


def test_rss_ratio_of_a_pair() -> None:
    assert rss_ratio({"worker_peak_rss_mb": 150.0}, {"worker_peak_rss_mb": 195.0}) == 1.3
    assert rss_ratio({"worker_peak_rss_mb": None}, {"worker_peak_rss_mb": 195.0}) is None
