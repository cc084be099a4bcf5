"""Packing throughput and peak memory: invoices in, sealed batch parts out.

Invoices are generated one at a time (as the pack stage decrypts one sealed record at a
time) and fed to `PackageBuilder`, which flushes a batch whenever the planner says so;
only the packing work (archive, spool file, parts, key wrap) is timed, not generation.
Peak RSS is the process's high-water mark (`ru_maxrss`), so every size of `--sweep` runs
in a fresh interpreter; flat figures across sizes mean memory does not grow with the
batch.

    python -m pipeline.bench.pack_bench --invoices 10000
    python -m pipeline.bench.pack_bench --sweep 2000,10000,20000 --format tar.gz
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.demo.samples import PROFILES, make_invoice, seller_nips
from pipeline.ksef.package import (
    BatchLimits,
    Fit,
    InvoiceSource,
    PackageBuilder,
    PackageFormat,
)
from pipeline.ksef.package.writer import DEFAULT_LEVEL

BENCH_DAY = dt.date(2026, 3, 2)
MB = 1_000_000


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # Linux: KiB


def run(
    invoices: int,
    *,
    fmt: PackageFormat,
    level: int,
    profile: str,
    limits: BatchLimits,
    spool: Path,
    fsync: bool,
    trace: bool,
) -> dict[str, Any]:
    public_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    seller = seller_nips(1, seed=7)[0]

    def invoice(i: int) -> bytes:
        return make_invoice(
            seller_nip=seller, number=f"FV/{i}/{BENCH_DAY:%m/%Y}", issue_date=BENCH_DAY,
            profile=profile, seed=i,
        )

    invoice(0)  # warm the generator before the baseline
    baseline_rss = _peak_rss_mb()
    if trace:
        tracemalloc.start()
    packing = 0.0
    input_bytes = package_bytes = parts = batches = 0
    builder: PackageBuilder | None = None

    def seal(done: PackageBuilder) -> None:
        nonlocal package_bytes, parts, batches
        sealed = done.finish(public_key)
        package_bytes += sealed.manifest.package_size
        parts += len(sealed.manifest.parts)
        batches += 1
        shutil.rmtree(sealed.directory)

    for i in range(invoices):
        xml = invoice(i)
        input_bytes += len(xml)
        start = time.perf_counter()
        if builder is not None and builder.verdict(len(xml)) is Fit.FULL:
            seal(builder)
            builder = None
        if builder is None:
            builder = PackageBuilder(
                spool / f"batch-{batches:04d}", batch_id=f"bench-{batches}", fmt=fmt,
                level=level, limits=limits, fsync=fsync,
            )
        builder.add(InvoiceSource("ksef.invoices.sealed", 0, i), xml)
        packing += time.perf_counter() - start
    if builder is not None:
        start = time.perf_counter()
        seal(builder)
        packing += time.perf_counter() - start
    traced_peak = tracemalloc.get_traced_memory()[1] / MB if trace else None
    tracemalloc.stop()
    return {
        "invoices": invoices,
        "batches": batches,
        "format": fmt.value,
        "level": level,
        "profile": profile,
        "avg_invoice_bytes": round(input_bytes / max(invoices, 1)),
        "input_mb": round(input_bytes / MB, 1),
        "package_mb": round(package_bytes / MB, 1),
        "parts": parts,
        "pack_s": round(packing, 2),
        "input_mb_per_s": round(input_bytes / MB / packing, 1),
        "invoices_per_s": round(invoices / packing),
        "baseline_rss_mb": round(baseline_rss, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "traced_peak_mb": None if traced_peak is None else round(traced_peak, 1),
        "fsync": fsync,
    }


def _sweep(sizes: list[int], argv: list[str]) -> list[dict[str, Any]]:
    """Each size in its own interpreter, so each peak RSS is that run's own."""
    results = []
    for size in sizes:
        cmd = [sys.executable, "-m", "pipeline.bench.pack_bench", *argv, "--invoices", str(size),
               "--json"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out))
    return results


def _line(result: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in result.items() if v is not None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pack_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--sweep", help="comma-separated invoice counts, e.g. 2000,10000,20000")
    parser.add_argument("--format", default="zip", choices=["zip", "tar.gz"])
    parser.add_argument("--level", type=int, default=DEFAULT_LEVEL)
    parser.add_argument("--profile", default="typical", choices=PROFILES)
    parser.add_argument("--part-bytes", type=int, default=BatchLimits().max_part_bytes)
    parser.add_argument("--spool", type=Path, help="spool directory (default: a temp dir)")
    parser.add_argument("--no-fsync", dest="fsync", action="store_false")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python heap")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.sweep:
        passthrough = list(argv if argv is not None else sys.argv[1:])
        passthrough = _without_option(passthrough, "--sweep")
        passthrough = _without_option(passthrough, "--invoices")
        for result in _sweep([int(s) for s in args.sweep.split(",")], passthrough):
            print(_line(result))
        return 0
    spool = args.spool or Path(tempfile.mkdtemp(prefix="pack-bench-"))
    try:
        result = run(
            args.invoices, fmt=PackageFormat.parse(args.format), level=args.level,
            profile=args.profile, limits=BatchLimits().with_part_bytes(args.part_bytes),
            spool=spool, fsync=args.fsync, trace=args.tracemalloc,
        )
    finally:
        if args.spool is None:
            shutil.rmtree(spool, ignore_errors=True)
    print(json.dumps(result) if args.json else _line(result))
    return 0


def _without_option(argv: list[str], option: str) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
