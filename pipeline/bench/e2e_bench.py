"""`ops/bench e2e`: invoices/s from ingest to outcome, broker, emulator and workers included.

Runs the demo machinery (`python -m pipeline.demo --exit-when-done`) on a throwaway state
directory: a fresh broker, topic catalog, KSeF emulator and worker(s); it generates the
invoices (not timed), ingests them and waits until every one has an outcome or a
rejection. The clock runs from the start of ingest to the last invoice accounted for,
so it includes the pack linger and KSeF session round trips, as a biller would see it.
The demo's own progress goes to stderr; stdout gets the summary with the machine load.

    python -m pipeline.bench e2e [--invoices 10000] [--sellers 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass

from pipeline.bench.machine import load_note

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


def run_demo(invoices: int, sellers: int, workers: int, linger: float,
             timeout: float) -> tuple[int, DemoSummary | None]:
    """Run the demo to completion, echoing its output to stderr; (exit code, summary)."""
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as var:
        cmd = [sys.executable, "-m", "pipeline.demo", "--exit-when-done", "--var", var,
               "--invoices", str(invoices), "--sellers", str(sellers),
               "--workers", str(workers), "--linger", str(linger), "--timeout", str(timeout)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as demo:
            assert demo.stdout is not None
            for line in demo.stdout:
                lines.append(line)
                with contextlib.suppress(OSError):  # our reader gone: the demo still ends
                    print(line, end="", file=sys.stderr, flush=True)
            code = demo.wait()
    return code, parse_summary(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ops/bench e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--sellers", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (all stages)")
    parser.add_argument("--linger", type=float, default=5.0,
                        help="seconds a batch waits for more invoices (the demo's default)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    before = load_note()
    code, summary = run_demo(args.invoices, args.sellers, args.workers, args.linger,
                             args.timeout)
    if summary is None:
        print(f"e2e: the demo printed no summary (exit {code})", file=sys.stderr)
        return code or 1
    result = {**asdict(summary), "sellers": args.sellers, "workers": args.workers,
              "linger_s": args.linger, "load_before": before, "load_after": load_note(),
              "complete": code == 0}
    print(json.dumps(result) if args.json else " ".join(f"{k}={v}" for k, v in result.items()))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
