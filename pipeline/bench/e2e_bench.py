"""`ops/bench e2e`: invoices/s from ingest to outcome, broker, emulator and workers included.

Runs the demo machinery (`python -m pipeline.demo --exit-when-done`) on a throwaway state
directory: a fresh broker, topic catalog, KSeF emulator and worker(s); it generates the
invoices (not timed), ingests them and waits until every one has an outcome or a
rejection. The clock runs from the start of ingest to the last invoice accounted for,
so it includes the pack linger and KSeF session round trips, as a biller would see it.
The demo's own progress goes to stderr; stdout gets the summary with the machine load.

Over the same span the demo samples /proc (`pipeline/bench/proc_usage.py`): the CPU
time of the worker(s), the broker's JVM and the emulator (start-up excluded), and the
workers' peak RSS (VmHWM) just before they stop. After the run, this process times the
bare work every invoice needs on the same invoice mix, single-threaded after a warm-up:
the project's FA(3) check (lxml parse + XSD validation), SHA-256, deflate at the pack
level and AES-256-GCM with the keyring, and prints (workers + broker CPU) / bare.

With `--repeat N` it runs N times (each on a fresh stack) and prints every figure's
median with the lowest and highest run beside it: on a shared 2-core machine two runs
of the same code differ by 10 to 20% (the bare work itself by up to 30%), so one run
says little against a goal.

    python -m pipeline.bench e2e [--invoices 10000] [--sellers 3] [--workers 1]
                                 [--repeat N] [--json-out PATH] [--rss-compare]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.bench.machine import load_note

WARM_UP = 3000  # invoices; enough for the broker's JIT to settle (see docs/performance.md)
SUMMARY = re.compile(r"^submitted=(\d+) accepted=(\d+) rejected=(\d+) seconds=([\d.]+) "
                     r"invoices_per_s=([\d.]+)$")


@dataclass(frozen=True)
class DemoSummary:
    submitted: int
    accepted: int
    rejected: int
    seconds: float
    invoices_per_s: float


def parse_summary(lines: list[str]) -> DemoSummary | None:
    """The demo's final summary line, if it printed one (the last such line wins)."""
    for line in reversed(lines):
        match = SUMMARY.match(line.strip())
        if match:
            sub, acc, rej, secs, rate = match.groups()
            return DemoSummary(int(sub), int(acc), int(rej), float(secs), float(rate))
    return None


def run_demo(invoices: int, sellers: int, workers: int, linger: float, timeout: float,
             usage: Path | None = None, warm_up: int = 0) -> tuple[int, DemoSummary | None]:
    """Run the demo to completion, echoing its output to stderr; (exit code, summary).
    With `usage`, the demo writes its CPU and peak-RSS samples there (see `read_usage`)."""
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as var:
        cmd = [sys.executable, "-m", "pipeline.demo", "--exit-when-done", "--var", var,
               "--invoices", str(invoices), "--sellers", str(sellers),
               "--workers", str(workers), "--linger", str(linger), "--timeout", str(timeout),
               "--warm-up", str(warm_up)]
        if usage is not None:
            cmd += ["--usage-out", str(usage)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as demo:
            assert demo.stdout is not None
            for line in demo.stdout:
                lines.append(line)
                with contextlib.suppress(OSError):  # our reader gone: the demo still ends
                    print(line, end="", file=sys.stderr, flush=True)
            code = demo.wait()
    return code, parse_summary(lines)


def read_usage(path: Path) -> dict[str, Any] | None:
    """The demo's samples (`pipeline.demo --usage-out`); None if it wrote none."""
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return None


def usage_figures(usage: dict[str, Any] | None, invoices: int) -> dict[str, Any]:
    """CPU ms per invoice and cores used per process group, and the workers' peak RSS."""
    if usage is None:
        return {}
    seconds = max(float(usage["seconds"]), 1e-9)
    out: dict[str, Any] = {}
    for group in ("workers", "broker", "emulator"):
        ms = float(usage["cpu_ms"].get(group, 0.0))
        out[f"{group}_cpu_ms"] = round(ms / max(invoices, 1), 3)
        out[f"{group}_cores"] = round(ms / 1000 / seconds, 2)
    peaks = [kb for kb in usage["peak_rss_kb"].values() if kb is not None]
    out["worker_peak_rss_mb"] = round(max(peaks) / 1024, 1) if peaks else None
    out["cpu_span_s"] = usage["seconds"]
    restarted = [g for g, yes in usage.get("restarted", {}).items() if yes]
    if restarted:  # a restarted process's CPU before the restart is not counted
        out["restarted"] = ",".join(restarted)
    return out


def bare_invoices(count: int, sellers: int) -> list[tuple[str, str, bytes]]:
    """The demo's invoice mix (same profiles and seeds; other NIPs and numbers)."""
    from pipeline.clock import polish_today
    from pipeline.demo.samples import seller_nips
    from pipeline.demo.workload import generate

    return generate(count, seller_nips(sellers, seed=4242), polish_today(), "bench")


def bare_work(items: list[tuple[str, str, bytes]], repeats: int = 2,
              clock: Callable[[], float] = time.thread_time) -> dict[str, float]:
    """ms per invoice of each piece of work every invoice needs, in this thread's CPU time
    (best of `repeats` passes over `items`, after a warm-up pass over a few of them)."""
    from pipeline.clock import polish_today
    from pipeline.ksef.fa3 import InvoiceChecker
    from pipeline.ksef.keyring import Keyring
    from pipeline.ksef.package.writer import DEFAULT_LEVEL
    from pipeline.runtime.keyring_file import new_keyring_json

    checker = InvoiceChecker()
    checker.warm_up()
    keyring = Keyring.from_json(new_keyring_json())
    today = polish_today()

    def check(invoice_id: str, xml: bytes) -> None:
        result = checker.check(xml, today=today)
        if not result.ok:
            raise RuntimeError(f"sample invoice {invoice_id} fails the check: {result.finding}")

    work: dict[str, Callable[[str, bytes], object]] = {
        "check": check,  # lxml parse + FA(3) XSD validation (+ the checker's byte checks)
        "sha256": lambda _id, xml: hashlib.sha256(xml).digest(),
        "deflate": lambda _id, xml: zlib.compress(xml, DEFAULT_LEVEL, wbits=-15),
        "aes_gcm": lambda invoice_id, xml: keyring.seal(xml, invoice_id.encode()),
    }
    for run in work.values():
        for invoice_id, _nip, xml in items[:200]:
            run(invoice_id, xml)
    best = dict.fromkeys(work, float("inf"))
    for _ in range(max(repeats, 1)):
        for name, run in work.items():
            started = clock()
            for invoice_id, _nip, xml in items:
                run(invoice_id, xml)
            best[name] = min(best[name], clock() - started)
    per = {name: 1000 * seconds / max(len(items), 1) for name, seconds in best.items()}
    return {**per, "total": sum(per.values())}


def bare_figures(bare: dict[str, float] | None, cpu: dict[str, Any]) -> dict[str, Any]:
    if bare is None:
        return {}
    out: dict[str, Any] = {f"bare_{name}_ms": round(ms, 4) for name, ms in bare.items()
                           if name != "total"}
    out["bare_ms"] = round(bare["total"], 4)
    if "workers_cpu_ms" in cpu and bare["total"] > 0:
        pipeline_ms = cpu["workers_cpu_ms"] + cpu["broker_cpu_ms"]
        out["cpu_over_bare"] = round(pipeline_ms / bare["total"], 2)
    return out


ROWS: tuple[tuple[str, str, str], ...] = (
    ("invoices_per_s", "invoices/s end to end", ""),
    ("seconds", "seconds, ingest to last outcome", ""),
    ("workers_cpu_ms", "CPU ms/invoice, worker(s)", "workers_cores"),
    ("broker_cpu_ms", "CPU ms/invoice, broker (JVM)", "broker_cores"),
    ("emulator_cpu_ms", "CPU ms/invoice, KSeF emulator", "emulator_cores"),
    ("bare_check_ms", "bare ms/invoice, parse + FA(3) XSD", ""),
    ("bare_sha256_ms", "bare ms/invoice, SHA-256", ""),
    ("bare_deflate_ms", "bare ms/invoice, deflate", ""),
    ("bare_aes_gcm_ms", "bare ms/invoice, AES-256-GCM", ""),
    ("bare_ms", "bare ms/invoice, total", ""),
    ("cpu_over_bare", "(workers + broker CPU) / bare", ""),
    ("worker_peak_rss_mb", "worker peak RSS MB (VmHWM)", ""),
)


def table(result: dict[str, Any]) -> str:
    """The summary as an aligned two-column table (a third with cores where it applies)."""
    head = (f"e2e: {result['submitted']} invoices, {result['sellers']} sellers, "
            f"{result['workers']} worker(s), after {result.get('warm_up', 0)} not measured; "
            f"{result['load_before']} -> "
            f"{result['load_after'].split('load=')[-1]}")
    lines = [head]
    width = max(len(label) for _, label, _ in ROWS)
    for key, label, cores in ROWS:
        if result.get(key) is None:
            continue
        extra = f"  ({result[cores]} cores)" if cores and cores in result else ""
        lines.append(f"  {label.ljust(width)}  {result[key]:>10}{extra}")
    return "\n".join(lines)


GOALS = (("cpu_over_bare", "<=", 6.0), ("invoices_per_s", ">=", 600.0))


def medians(runs: list[dict[str, Any]]) -> dict[str, tuple[float, float, float]]:
    """figure -> (median, lowest, highest) over the runs, for the figures of the table
    that every run has."""
    out: dict[str, tuple[float, float, float]] = {}
    for key, _label, _cores in ROWS:
        values = [float(run[key]) for run in runs if run.get(key) is not None]
        if values and len(values) == len(runs):
            out[key] = (round(statistics.median(values), 4), min(values), max(values))
    return out


def spread_table(runs: list[dict[str, Any]]) -> str:
    """The figures of several runs: median, lowest and highest, and the goals met by the
    medians."""
    figures = medians(runs)
    width = max(len(label) for _, label, _ in ROWS)
    lines = [f"e2e: {len(runs)} runs of {runs[0]['submitted']} invoices, "
             f"{runs[0]['sellers']} sellers, {runs[0]['workers']} worker(s)",
             f"  {''.ljust(width)}  {'median':>10}  {'lowest':>10}  {'highest':>10}"]
    for key, label, _cores in ROWS:
        if key in figures:
            mid, low, high = figures[key]
            lines.append(f"  {label.ljust(width)}  {mid:>10}  {low:>10}  {high:>10}")
    for key, sense, goal in GOALS:
        if key in figures:
            met = figures[key][0] <= goal if sense == "<=" else figures[key][0] >= goal
            lines.append(f"  goal: median {key} {sense} {goal}: {'met' if met else 'not met'}")
    return "\n".join(lines)


def one_run(args: argparse.Namespace, invoices: int, bare: bool, warm_up: int = 0
            ) -> tuple[int, dict[str, Any]]:
    """One demo run with its figures, after `warm_up` invoices not measured; (exit code,
    result) — an empty result if the demo printed no summary."""
    before = load_note()
    with tempfile.TemporaryDirectory(prefix="e2e-usage-") as tmp:
        usage_path = Path(tmp) / "usage.json"
        code, summary = run_demo(invoices, args.sellers, args.workers, args.linger,
                                 args.timeout, usage_path, warm_up)
        usage = read_usage(usage_path)
    if summary is None:
        print(f"e2e: the demo printed no summary (exit {code})", file=sys.stderr)
        return code or 1, {}
    after = load_note()
    cpu = usage_figures(usage, summary.submitted)
    measured = None
    if bare:
        print(f"e2e: timing the bare work on {invoices} invoices ...", file=sys.stderr)
        measured = bare_work(bare_invoices(invoices, args.sellers), args.bare_repeats)
    result = {**asdict(summary), "sellers": args.sellers, "workers": args.workers,
              "linger_s": args.linger, "warm_up": warm_up, "load_before": before,
              "load_after": after,
              "complete": code == 0, **cpu, **bare_figures(measured, cpu)}
    return code, result


def print_result(result: dict[str, Any], as_json: bool) -> None:
    print(json.dumps(result) if as_json else " ".join(f"{k}={v}" for k, v in result.items()),
          flush=True)


def rss_compare(args: argparse.Namespace) -> int:
    """1,000 then 10,000 invoices (`--repeat` pairs): the worker's peak RSS of each and
    their ratio; with several pairs, the median of the ratios counts."""
    pairs: list[list[dict[str, Any]]] = []
    worst = 0
    for _ in range(args.repeat):
        pair = []
        for invoices in (1_000, 10_000):
            code, result = one_run(args, invoices, bare=False,
                                   warm_up=0 if args.warm_up is None else args.warm_up)
            worst = worst or code
            if not result:
                return code
            print_result(result, args.json)
            pair.append(result)
        pairs.append(pair)
    ratios = [rss_ratio(small, large) for small, large in pairs]
    known = [r for r in ratios if r is not None]
    ratio = round(statistics.median(known), 3) if len(known) == len(ratios) else None
    small, large = (pairs[0][i].get("worker_peak_rss_mb") for i in (0, 1))
    report = {"runs": [run for pair in pairs for run in pair], "peak_rss_mb_1000": small,
              "peak_rss_mb_10000": large, "peak_rss_ratios": ratios,
              "peak_rss_ratio": ratio, "within_20_percent": ratio is not None and ratio <= 1.2}
    if not args.json:
        for pair, each in zip(pairs, ratios, strict=True):
            for run in pair:
                print(table(run))
            print(f"worker peak RSS: {pair[0].get('worker_peak_rss_mb')} MB at 1,000 "
                  f"invoices, {pair[1].get('worker_peak_rss_mb')} MB at 10,000; ratio {each}")
        verdict = "met" if report["within_20_percent"] else "not met"
        of = f" (median of {len(pairs)} pairs)" if len(pairs) > 1 else ""
        print(f"peak RSS ratio{of}: {ratio} (goal <= 1.2: {verdict})")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return worst


def rss_ratio(small: dict[str, Any], large: dict[str, Any]) -> float | None:
    """Peak RSS at 10,000 invoices over the peak at 1,000 (None when one is missing)."""
    low, high = small.get("worker_peak_rss_mb"), large.get("worker_peak_rss_mb")
    return round(high / low, 3) if low and high else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ops/bench e2e", description=__doc__.split("\n\n    python -m")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=10_000,
                        help="invoices to generate and ingest (default 10000)")
    parser.add_argument("--sellers", type=int, default=3, help="seller contexts (default 3)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes, all stages each (default 1)")
    parser.add_argument("--linger", type=float, default=5.0,
                        help="seconds a batch waits for more invoices (the demo's default)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON line instead of the table")
    parser.add_argument("--json-out", metavar="PATH",
                        help="also write the result (figures of the table) to PATH as JSON")
    parser.add_argument("--bare-repeats", type=int, default=2,
                        help="passes over the invoices timing the bare work; the best counts")
    parser.add_argument("--no-bare", action="store_true", help="skip timing the bare work")
    parser.add_argument("--warm-up", type=int, default=None, metavar="N",
                        help="invoices run through the stack first, not measured (default "
                             f"{WARM_UP}; 0 with --rss-compare, whose peaks they would set): "
                             "a fresh broker spends its first tens of seconds compiling its "
                             "hot code, which one running for days does not")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run N times, each on a fresh stack, and print every figure's "
                             "median, lowest and highest (with --rss-compare: N pairs)")
    parser.add_argument("--rss-compare", action="store_true",
                        help="run 1,000 then 10,000 invoices (--invoices is ignored) and "
                             "compare the worker's peak RSS (goal: within 20%%)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat needs at least 1")
    if args.rss_compare:
        return rss_compare(args)
    runs, worst = [], 0
    for _ in range(args.repeat):
        code, result = one_run(args, args.invoices, bare=not args.no_bare,
                               warm_up=WARM_UP if args.warm_up is None else args.warm_up)
        worst = worst or code
        if not result:
            return code
        print_result(result, args.json)
        runs.append(result)
    if not args.json:
        print(table(runs[0]) if len(runs) == 1 else spread_table(runs))
    if args.json_out:
        figures = medians(runs)
        report: dict[str, Any] = runs[0] if len(runs) == 1 else {
            "runs": runs, "medians": {k: v[0] for k, v in figures.items()},
            "lowest": {k: v[1] for k, v in figures.items()},
            "highest": {k: v[2] for k, v in figures.items()}}
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return worst

if __name__ == "__main__":
    raise SystemExit(main())
