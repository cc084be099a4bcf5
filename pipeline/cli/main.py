"""`ksef-pipeline` command.

Each subcommand lives in its own module of this package exposing
`configure(parser)` and `run(args) -> int`. Modules are imported only when their
command runs, so quick commands (deadline, ksef-number) never pay for importing Faust.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "worker": ("pipeline.cli.worker_command", "run a Faust worker (stages + mode-state)"),
    "topics": ("pipeline.cli.topics_command", "create or describe the topic catalog on a cluster"),
    "deadline": ("pipeline.cli.deadline", "compute an invoice's KSeF submission deadline"),
    "ksef-number": ("pipeline.cli.ksef_number", "check a KSeF number"),
    "qr": ("pipeline.cli.qr_command", "write KOD I / KOD II links and images for an invoice"),
    "emulator": ("pipeline.cli.emulator_command", "run the local KSeF API + Latarnia emulator"),
    "emulator-ctl": ("pipeline.cli.emulator_ctl", "control a running emulator (faults)"),
    "ingest": ("pipeline.cli.ingest", "push invoice XML files into the pipeline"),
    "announce": ("pipeline.cli.announce", "enter or end a KSeF outage by hand"),
    "deadlines": ("pipeline.cli.deadline_list", "list pending invoices by legal deadline"),
    "replay": ("pipeline.cli.replay_command", "send rejected invoices through the pipeline again"),
    "credentials": ("pipeline.cli.credentials_command",
                    "list, check, enroll or revoke the KSeF credentials of seller contexts"),
    "held": ("pipeline.cli.held",
             "contexts held for credentials; reject their held invoices"),
    "keyring": ("pipeline.cli.keyring_command",
                "create (init) or rotate the at-rest keyring file"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: ksef-pipeline COMMAND [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "`ksef-pipeline COMMAND --help` describes a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"ksef-pipeline: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"ksef-pipeline {name}", description=COMMANDS[name][1])
    module.configure(parser)
    parsed = parser.parse_args(rest)
    try:
        result: int = module.run(parsed)
    except ValueError as exc:
        from pipeline.runtime.settings import SettingsError

        if not isinstance(exc, SettingsError):
            raise
        # a refused setting (KSEF_ENV missing, SASL without TLS, ...): its message is the fix
        print(f"ksef-pipeline {name}: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
