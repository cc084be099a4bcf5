"""`ksef-pipeline emulator`: run the local KSeF API v2 + Latarnia emulator."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

from pipeline.ksef.limits import PROFILES


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = any free port)")
    parser.add_argument("--data-dir", type=Path, default=Path("var/emulator"),
                        help="SQLite database, keys, parts and UPOs (kept across restarts)")
    parser.add_argument("--limits", choices=PROFILES, default="production",
                        help="rate limits: production, test (10x) or off")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="run rate-limit windows this many times faster")
    parser.add_argument("--public-host", default=None,
                        help="host name used in part-upload and download URLs")
    parser.add_argument("--workers", type=int, default=None,
                        help="validation processes (0 = a thread; default: CPUs, max 4)")
    parser.add_argument("--max-invoices", type=int, default=None,
                        help="invoices per session (default KSeF's 10,000)")
    parser.add_argument("--admin-token-file", type=Path,
                        default=os.environ.get("KSEF_EMULATOR_ADMIN_TOKEN_FILE") or None,
                        help="file (mode 0600) with the bearer token(s) of the /_emulator admin "
                        "endpoints (default $KSEF_EMULATOR_ADMIN_TOKEN_FILE)")
    parser.add_argument("--insecure-admin", action="store_true",
                        help="serve the admin endpoints without a token (local experiments "
                        "only: anyone who can reach the port may reset or reconfigure it)")


def run(args: argparse.Namespace) -> int:
    from pipeline.bearer import TokenFileError, read_tokens
    from pipeline.emulator import EmulatorConfig, serve
    from pipeline.runtime.logs import RedactFilter

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:  # the admin token, bearer credentials
        handler.addFilter(RedactFilter())
    extra: dict[str, object] = {}
    if args.admin_token_file is not None:
        try:
            extra["admin_tokens"] = tuple(e.token for e in read_tokens(args.admin_token_file))
        except TokenFileError as exc:
            print(f"ksef-pipeline emulator: {exc}", file=sys.stderr)
            return 2
    elif args.insecure_admin:
        extra["insecure_admin"] = True
        logging.getLogger(__name__).warning(
            "admin endpoints (/_emulator/*) answer without a token (--insecure-admin)")
    else:
        logging.getLogger(__name__).warning(
            "admin endpoints (/_emulator/*) are off: no --admin-token-file "
            "(KSEF_EMULATOR_ADMIN_TOKEN_FILE) and no --insecure-admin")
    if args.workers is not None:
        extra["validation_workers"] = args.workers
    if args.max_invoices is not None:
        extra["max_invoices"] = args.max_invoices
    config = EmulatorConfig(data_dir=args.data_dir, host=args.host, port=args.port,
                            public_host=args.public_host, limits=args.limits,
                            time_scale=args.time_scale, **extra)  # type: ignore[arg-type]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    return 0
