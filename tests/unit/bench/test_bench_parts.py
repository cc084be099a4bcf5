"""The benchmarks' pure parts: rates, option handling, summary parsing (no broker)."""

from __future__ import annotations

import itertools
import os

import pytest

from pipeline.bench.__main__ import OVERRIDING, arguments
from pipeline.bench.e2e_bench import DemoSummary, parse_summary
from pipeline.bench.kafka_stage_bench import OutputTally, cpu_seconds, parse_env, span_rate
from pipeline.bench.validate_stage_bench import race, ratio, table


def test_span_rate_counts_gaps_between_first_and_last() -> None:
    assert span_rate([5_000, 1_000, 3_000]) == (2 / 4.0, 4.0)  # 3 records, 2 gaps in 4 s


@pytest.mark.parametrize("stamps", [[], [7], [7, 7]])
def test_span_rate_without_a_span_gives_no_rate(stamps: list[int]) -> None:
    assert span_rate(stamps)[0] == 0.0


def test_parse_env_splits_at_the_first_equals_sign() -> None:
    assert parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}


@pytest.mark.parametrize("bad", ["NOEQUALS", "=value"])
def test_parse_env_refuses_malformed_pairs(bad: str) -> None:
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_env([bad])


def test_race_keeps_each_sides_best_pass() -> None:
    ticks = itertools.count()  # every clock read advances one unit
    # per chunk each side reads the clock twice: 1 unit per chunk per side
    best = race({"a": lambda _: True, "b": lambda _: True}, list(range(5)), repeats=2,
                chunk=2, clock=lambda: float(next(ticks)))
    assert best == {"a": 3.0, "b": 3.0}  # 3 chunks of at most 2 items


def test_race_refuses_a_side_that_rejects_corpus_items() -> None:
    with pytest.raises(RuntimeError, match="odd: 1 corpus items failed"):
        race({"odd": lambda n: n % 2 == 0}, [0, 1, 2], repeats=1)


def test_ratio_and_table() -> None:
    assert ratio(1.0, 4.0) == 0.25 and ratio(1.0, 0.0) == 0.0
    lines = table([{"profile": "typical", "raw_lxml_per_s": 10.5}]).splitlines()
    assert lines[0].split()[:3] == ["profile", "mean_bytes", "raw_lxml/s"]
    assert lines[1].split()[:3] == ["typical", "-", "10.5"]


def test_parse_summary_reads_the_demos_last_summary_line() -> None:
    lines = ["[demo] 2.0s ...\n",
             "submitted=10 accepted=8 rejected=2 seconds=4.0 invoices_per_s=2.5\n",
             "[demo] stopping Kafka ...\n"]
    assert parse_summary(lines) == DemoSummary(10, 8, 2, 4.0, 2.5)
    assert parse_summary(["[demo] timed out\n"]) is None


def test_default_options_yield_to_given_ones() -> None:
    defaults = ["--sweep", "2000,10000", "--json"]
    assert arguments(defaults, [], OVERRIDING) == defaults
    assert arguments(defaults, ["--invoices", "5"], OVERRIDING) == ["--json", "--invoices", "5"]
    assert arguments(defaults, ["--sweep=1,2"], OVERRIDING) == ["--json", "--sweep=1,2"]
    assert arguments(defaults, ["--format", "zip"], OVERRIDING) == [*defaults, "--format", "zip"]


def test_cpu_seconds_of_this_process_grow_with_work() -> None:
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds(os.getpid()) > before


def test_output_tally_counts_each_invoice_once() -> None:
    tally = OutputTally()
    tally.add("a", 1_000, rejection=False)
    tally.add("b", 1_500, rejection=True)
    tally.add("a", 2_000, rejection=False)  # redelivered after a rebalance
    tally.add("b", 2_500, rejection=False)  # already settled as a rejection
    assert (tally.settled, tally.repeats, tally.stamps) == (2, 2, [1_000])
