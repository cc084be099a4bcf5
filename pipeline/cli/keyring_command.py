"""`ksef-pipeline keyring`: create and rotate the at-rest keyring file.

    ksef-pipeline keyring init   [--file F] [--id ID]
    ksef-pipeline keyring rotate [--file F] [--id ID] [--stage]
    ksef-pipeline keyring rotate [--file F] --activate ID
    ksef-pipeline keyring show   [--file F]

--file defaults to KSEF_KEYRING_FILE. `init` writes a new keyring (0600) and refuses to
overwrite one. `rotate` adds a fresh key, active at once, or with --stage only known
(readers learn it first; `--activate ID` later makes it the sealing key); old keys stay
to open older records. Every write is atomic and 0600. `show` prints the key ids and the
active one, never key material. Exit 0 done, 1 refused (exists, bad keyring, unsafe
permissions), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.ksef.keyring import KeyringError
from pipeline.runtime.keyring_file import (
    ENV_FILE,
    activate_key,
    init_keyring,
    read_keyring_file,
    rotate_keyring,
)
from pipeline.runtime.private_files import PrivateFileError


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    init = sub.add_parser("init", help="create a new keyring file (0600; never overwrites)")
    rotate = sub.add_parser("rotate", help="add a new key (active unless --stage)")
    show = sub.add_parser("show", help="key ids and the active one (no key material)")
    for p in (init, rotate, show):
        p.add_argument("--file", help=f"keyring file (default {ENV_FILE})")
    init.add_argument("--id", default="k1", help="the first key's id (default k1)")
    rotate.add_argument("--id", help="the new key's id (default: k<highest+1>)")
    rotate.add_argument("--stage", action="store_true",
                        help="add the key without making it active (activate it once every "
                             "reader has reloaded the keyring)")
    rotate.add_argument("--activate", metavar="ID",
                        help="make the already staged key ID active (adds no key)")


def run(args: argparse.Namespace) -> int:
    chosen = args.file or os.environ.get(ENV_FILE)
    if not chosen:
        print(f"ksef-pipeline keyring: name the file with --file or {ENV_FILE}",
              file=sys.stderr)
        return 2
    path = Path(chosen)
    try:
        if args.action == "init":
            init_keyring(path, args.id)
            print(f"keyring {path} created (0600), active key {args.id}; set "
                  f"{ENV_FILE}={path.resolve()} for every worker and command")
        elif args.action == "rotate" and args.activate:
            if args.stage or args.id:
                print("ksef-pipeline keyring: --activate takes no --id/--stage",
                      file=sys.stderr)
                return 2
            activate_key(path, args.activate)
            print(f"key {args.activate} is now active in {path}")
        elif args.action == "rotate":
            key_id = rotate_keyring(path, args.id, stage=args.stage)
            if args.stage:
                print(f"key {key_id} added to {path}, not active; once every reader has "
                      f"re-read the keyring: ksef-pipeline keyring rotate --file {path} "
                      f"--activate {key_id}")
            else:
                print(f"key {key_id} added to {path} and active; older keys kept")
        else:
            ring = read_keyring_file(path)
            print(f"{path}: active {ring.active}; keys {', '.join(ring.key_ids)}")
    except (KeyringError, PrivateFileError, OSError) as exc:
        print(f"ksef-pipeline keyring: {exc}", file=sys.stderr)
        return 1
    return 0
