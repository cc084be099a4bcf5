"""`ops/bench NAME [options]`: run one benchmark (or `all`) and print its figures.

Figures are measurements for the README, never pass/fail tests. Each run prints the
machine's CPU count and load average before and after, since other work on a shared
machine slows whatever is timed in wall-clock terms. `ops/bench NAME --help` lists a
benchmark's options.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

from pipeline.bench.machine import exit_on_sigterm, load_note

# name -> (module, default arguments, one-line description)
BENCHES: dict[str, tuple[str, list[str], str]] = {
    "validate": ("pipeline.bench.validate_stage_bench", [],
                 "raw lxml vs check_submission vs the stage through Kafka, per profile"),
    "pack": ("pipeline.bench.pack_bench", ["--sweep", "2000,10000,20000"],
             "MB/s and peak RSS packing typical invoices, per batch size"),
    "emulator": ("pipeline.bench.emulator_bench", [],
                 "seconds the emulator takes to process a 10,000-invoice batch"),
    "e2e": ("pipeline.bench.e2e_bench", [],
            "invoices/s from ingest to outcome (broker, emulator, workers)"),
    "deadlines": ("pipeline.bench.deadlines_bench", [],
                  "seconds to recompute 1,000,000 pending deadlines after an announcement"),
    "kafka-stage": ("pipeline.bench.kafka_stage_bench", [],
                    "one stage worker through Kafka (settings via --env, py-spy)"),
    "dedupe": ("pipeline.bench.dedupe_bench", [],
               "worker start-up with years of invoice numbers in the duplicate table"),
    "validate-raw": ("pipeline.bench.validate_bench", [],
                     "InvoiceChecker.check vs raw lxml (no Kafka)"),
}
ALL = ("validate", "pack", "emulator", "deadlines", "e2e")
OVERRIDING = {"--sweep": {"--invoices"}}


def usage() -> str:
    width = max(map(len, BENCHES))
    lines = ["usage: ops/bench NAME [options]", "", "benchmarks:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, _, text) in BENCHES.items()]
    lines += [f"  {'all'.ljust(width)}  {', '.join(ALL)} in turn, each in its own process"]
    return "\n".join(lines)


def arguments(defaults: list[str], given: list[str], overriding: dict[str, set[str]]
              ) -> list[str]:
    """`given` plus each default option (with its value) that no given option overrides.

    `overriding` names, per default option, the options that replace it too (`--invoices`
    replaces pack's `--sweep`).
    """
    names = {arg.split("=", 1)[0] for arg in given if arg.startswith("--")}
    out: list[str] = []
    for i, arg in enumerate(defaults):
        if arg.startswith("--") and not names & ({arg} | overriding.get(arg, set())):
            value = defaults[i + 1:i + 2]
            out += [arg, *(v for v in value if not v.startswith("--"))]
    return out + given


def run_one(name: str, argv: list[str]) -> int:
    module, _, _ = BENCHES[name]
    print(f"== ops/bench {name} {' '.join(argv)}".rstrip() + f"  ({load_note()} at start)",
          flush=True)
    sys.argv = [f"ops/bench {name}", *argv]
    code = importlib.import_module(module).main()
    print(f"== ops/bench {name}: {load_note()} at end", flush=True)
    return int(code or 0)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    exit_on_sigterm()
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name == "all":
        failed = [bench for bench in ALL
                  if subprocess.run([sys.executable, "-m", "pipeline.bench", bench]).returncode]
        if failed:
            print(f"ops/bench all: failed: {', '.join(failed)}", file=sys.stderr)
        return 1 if failed else 0
    if name not in BENCHES:
        print(f"ops/bench: unknown benchmark {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return run_one(name, arguments(BENCHES[name][1], rest, OVERRIDING))


if __name__ == "__main__":
    raise SystemExit(main())
