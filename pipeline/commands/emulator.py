"""`ksef-pipeline emulator`: run the local KSeF API v2 + Latarnia emulator."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
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


def run(args: argparse.Namespace) -> int:
    from pipeline.emulator import EmulatorConfig, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    extra = {}
    if args.workers is not None:
        extra["validation_workers"] = args.workers
    if args.max_invoices is not None:
        extra["max_invoices"] = args.max_invoices
    config = EmulatorConfig(data_dir=args.data_dir, host=args.host, port=args.port,
                            public_host=args.public_host, limits=args.limits,
                            time_scale=args.time_scale, **extra)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    return 0
