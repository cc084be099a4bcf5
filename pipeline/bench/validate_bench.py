"""How much the full stateless check costs on top of bare lxml parse + XSD validation.

Both sides see the same generated corpus, the same parser options and a compiled
schema; passes alternate and the best of several is kept, so a busy shared machine
skews both sides alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.ksef.fa3.checker import invoice_parser
from pipeline.ksef.fa3.schema import compile_lxml_schema

BENCH_DAY = dt.date(2026, 3, 2)
_SELLERS = 50
_CHUNK = 20


def corpus(profile: str, count: int, *, day: dt.date = BENCH_DAY) -> list[bytes]:
    """`count` distinct valid invoices of one profile, spread over a few sellers."""
    sellers = seller_nips(_SELLERS + 1, seed=99)
    buyer = sellers.pop()
    return [
        make_invoice(
            seller_nip=sellers[i % _SELLERS], number=f"FV/{i}/{day:%m/%Y}", issue_date=day,
            profile=profile, buyer_nip=buyer, seed=i,
        )
        for i in range(count)
    ]


def _timed(run: Callable[[bytes], bool], chunk: list[bytes]) -> tuple[float, int]:
    start = time.process_time()
    passed = sum(run(data) for data in chunk)
    return time.process_time() - start, passed


def bench_raw_vs_checker(profile: str, count: int, *, repeats: int = 3) -> dict[str, Any]:
    """invoices/s of raw lxml parse+validate and of `InvoiceChecker.check`, and their ratio.

    "Raw" parses with the same hardened parser options the checker uses and validates
    against the same compiled XSD. The checker also drops blank text between elements
    when that is safe (see `parser_for`), so a second raw figure with that parser too
    (`raw_lxml_compact_per_s`) shows the overhead of the checks alone.

    The sides alternate chunk by chunk and are timed in this process's CPU time, so
    other load on a shared machine skews neither; each rate is the best of `repeats`
    full passes over the corpus (single thread: CPU time is the time to do the work).
    """
    invoices = corpus(profile, count)
    plain, compact = invoice_parser(), invoice_parser(drop_blank_text=True)
    schema = compile_lxml_schema()
    checker = InvoiceChecker()
    checker.warm_up()

    def raw(data: bytes) -> bool:
        return bool(schema.validate(etree.fromstring(data, plain)))

    def raw_compact(data: bytes) -> bool:
        return bool(schema.validate(etree.fromstring(data, compact)))

    def checked(data: bytes) -> bool:
        return checker.check(data, today=BENCH_DAY).ok

    sides = {"raw": raw, "raw_compact": raw_compact, "checker": checked}
    chunks = [invoices[i : i + _CHUNK] for i in range(0, count, _CHUNK)]
    best = dict.fromkeys(sides, float("inf"))
    for _ in range(repeats):
        spent = dict.fromkeys(sides, 0.0)
        for chunk in chunks:
            for label, run in sides.items():
                seconds, passed = _timed(run, chunk)
                if passed != len(chunk):
                    raise RuntimeError(f"{label}: {len(chunk) - passed} sample invoices failed")
                spent[label] += seconds
        best = {label: min(best[label], spent[label]) for label in sides}
    rate = {label: count / seconds for label, seconds in best.items()}
    return {
        "profile": profile,
        "count": count,
        "mean_bytes": sum(map(len, invoices)) // count,
        "raw_lxml_per_s": round(rate["raw"], 1),
        "checker_per_s": round(rate["checker"], 1),
        "ratio": round(rate["checker"] / rate["raw"], 3),
        "raw_lxml_compact_per_s": round(rate["raw_compact"], 1),
        "ratio_vs_compact_raw": round(rate["checker"] / rate["raw_compact"], 3),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=("small", "typical", "large"), default="typical")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(bench_raw_vs_checker(args.profile, args.count, repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
