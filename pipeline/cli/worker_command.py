"""`ksef-pipeline worker`: run the chosen stages (Faust agents, and validate+seal's
record loop) as one group member."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.runtime.topic_admin import Listing

# Stages that seal or open invoices: they need the keyring (KSEF_KEYRING_FILE/KSEF_KEYRING).
KEYRING_STAGES = frozenset({"validate", "pack", "submit"})


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stages", default="all",
                        help="comma-separated stages to run (default: all)")
    parser.add_argument("--module", action="append", default=[],
                        help="extra module registering agents on the app (repeatable)")
    parser.add_argument("--web-port", type=int, help="status/metrics port (KSEF_WEB_PORT)")
    parser.add_argument("--data-dir", help="worker state directory (KSEF_DATA_DIR)")
    parser.add_argument("--loglevel", default=None, help="log level (KSEF_LOG_LEVEL)")


GC_YOUNG_THRESHOLD = 20_000  # CPython's 700 collected every ~2 invoices


def run(args: argparse.Namespace) -> int:
    tune_malloc()  # before any client starts a thread
    # Settings are read from the environment when pipeline.runtime.app is imported.
    if args.web_port is not None:
        os.environ["KSEF_WEB_PORT"] = str(args.web_port)
    if args.data_dir:
        os.environ["KSEF_DATA_DIR"] = args.data_dir
    if args.loglevel:
        os.environ["KSEF_LOG_LEVEL"] = args.loglevel
    from pipeline.stages import ALIASES, HOLDING_STAGES, STAGES

    wanted = list(STAGES) if args.stages == "all" else [s for s in args.stages.split(",") if s]
    # `seal` is part of `validate` since one agent does both: the same group either way,
    # so an old `--stages seal` worker shares the work instead of doing it twice.
    wanted = list(dict.fromkeys(ALIASES.get(s, s) for s in wanted))
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        print(f"ksef-pipeline worker: unknown stage(s) {', '.join(unknown)}; "
              f"known: {', '.join(STAGES) or 'none'}", file=sys.stderr)
        return 2
    if HOLDING_STAGES & set(wanted):
        os.environ["KSEF_STREAM_WAIT_EMPTY"] = "0"
    if args.stages != "all" and wanted:
        # Workers of one consumer group must run the same agents: a stage subset is its
        # own group (ksef-pipeline-pack-submit-upo, ...).
        base = os.environ.get("KSEF_APP_ID", "ksef-pipeline")
        os.environ["KSEF_APP_ID"] = "-".join([base, *sorted(wanted)])
    problem = _settings_problem()
    if problem:
        print(f"ksef-pipeline worker: {problem}", file=sys.stderr)
        return 2
    if KEYRING_STAGES & set(wanted):
        # Fail closed before Faust starts: no keyring is ever generated here.
        from pipeline.ksef.keyring import KeyringError
        from pipeline.runtime.keyring_file import keyring_source

        try:
            keyring_source()
        except KeyringError as exc:
            print(f"ksef-pipeline worker: {exc}", file=sys.stderr)
            return 2
    # One question to the cluster at start-up: its size and its topics.
    from pipeline.runtime.settings import KafkaSettings
    from pipeline.runtime.topic_admin import cluster_listing

    listing = cluster_listing(KafkaSettings.from_env().confluent(log_level=3))
    _resolve_replication(listing)
    missing = _missing_topics(listing)
    if missing:
        print(f"ksef-pipeline worker: the cluster lacks {len(missing)} topic(s) of the "
              f"catalog ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): "
              "run `ksef-pipeline topics create` first, with the same KSEF_TOPIC_* "
              "settings", file=sys.stderr)
        return 2
    from pipeline.runtime import logs
    from pipeline.runtime.data_dir_lock import DataDirBusy, hold_data_dir
    from pipeline.runtime.settings import WorkerSettings

    # Before the app and the stages load: logging is set up here, never by an import.
    settings = WorkerSettings.from_env()
    try:  # one worker per data dir, held until this process ends
        data_dir = hold_data_dir(settings.data_dir)
    except DataDirBusy as exc:
        print(f"ksef-pipeline worker: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.broker_log_reminder_s)
    from pipeline.metrics.page import serve_metrics
    from pipeline.metrics.worker import watch_worker
    from pipeline.runtime.app import app, metrics, run_at_stop, worker_settings
    from pipeline.runtime.assignment_log import log_assignments
    from pipeline.runtime.spool_paths import spool_root
    from pipeline.runtime.stop_deadline import worker_class

    app.conf.Worker = worker_class(worker_settings.stop_deadline_s, run_at_stop)
    serve_metrics(app, metrics)
    watch_worker(app, metrics, spool_root(worker_settings))
    log_assignments(app)
    for name in wanted:
        module = importlib.import_module(STAGES[name])
        install = getattr(module, "install", None)
        if install is not None:  # a stage built from settings here, not at import
            install(app)
    for module in args.module:
        importlib.import_module(module)
    # Everything loaded so far (modules, compiled schemas, tables) lives as long as the
    # worker: keep the collector off it, and let young objects (one invoice's worth of
    # records and events) die by reference counting before a collection runs.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    sys.argv = ["ksef-pipeline worker", "worker", "--loglevel", worker_settings.log_level,
                "--web-host", worker_settings.web_host, "--web-port", str(worker_settings.web_port)]
    with data_dir:
        app.main()
    return 0


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 128 * 1024
ARENAS = 2


def tune_malloc() -> bool:
    """glibc's allocator, set before the worker starts a thread. False where the C
    library is not glibc (nothing to tune there).

    - The mmap threshold stays at 128 KiB. glibc raises it each time a big block is
      freed (up to 32 MiB); after that, buffers the size of a batch's manifest or UPO
      come from the heap and stay in the worker's resident memory once freed, so its
      peak grew with the size of the batches. Mapped, they are given back.
    - Two arenas, not glibc's eight per core: each librdkafka client runs threads of its
      own (a broker thread per broker, a main thread), and each thread that met a busy
      arena got one of its own, which keeps what it freed. With the deadline tracker's
      loop beside validate's, a 10,000-invoice run peaked at 232 MB, against 206 MB
      with two arenas (docs/performance.md, session 13)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, ARENAS)
                    and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def _settings_problem() -> str | None:
    """Why this worker must not start (no KSEF_ENV, a QR environment that disagrees with
    it, plain http off this host, SASL without TLS), before anything connects."""
    from pipeline.ksef_api.link import KsefSettings
    from pipeline.runtime.settings import KafkaSettings, SettingsError, ValidateSealSettings
    from pipeline.stages.s1_validate_seal.sealing import qr_environment

    try:
        KsefSettings.from_env()
        qr_environment(ValidateSealSettings.from_env())
        KafkaSettings.from_env()
    except SettingsError as exc:
        return str(exc)
    return None


def _missing_topics(listing: Listing) -> list[str]:
    """Catalog topics the cluster lacks. A worker started without them did not fail: it
    logged "Topic ... not found in cluster metadata" some 2,000 times a second. Nothing
    is said when the cluster did not answer in time (the worker waits for a broker that
    is still starting, as for any broker outage)."""
    from pipeline.runtime.topic_admin import missing_catalog_topics
    from topics import CatalogSettings

    return missing_catalog_topics(CatalogSettings.from_env(), {}, listing=listing) or []


def _resolve_replication(listing: Listing) -> None:
    """Replication `auto`: the cluster's size decides, before the app reads the settings.

    Faust creates the tables' changelog topics with this replication factor.
    """
    from pipeline.runtime.topic_admin import resolve_for_cluster
    from topics import CatalogSettings

    settings = CatalogSettings.from_env()
    if settings.replication_factor is not None and settings.min_insync_replicas is not None:
        return
    resolved = resolve_for_cluster(settings, {}, listing=listing)
    os.environ["KSEF_TOPIC_REPLICATION"] = str(resolved.replication_factor)
    os.environ["KSEF_TOPIC_MIN_ISR"] = str(resolved.min_insync_replicas)
