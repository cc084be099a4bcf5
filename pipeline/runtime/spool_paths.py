"""Where a worker keeps batch files: the spool directory, shared by the pack stage (it
writes a batch's parts there) and the submit stage (it uploads and then removes them).

Paths are derived from the worker's own spool root and a validated batch id only; a
path read from a topic is never used.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.ksef.package.spool import batch_dir, rebuilt_dir, remove_batch_dirs
from pipeline.runtime.settings import WorkerSettings
from topics.records import PackedBatch


def spool_root(worker: WorkerSettings) -> Path:
    """This worker's spool directory (KSEF_SPOOL_DIR, or <data dir>/spool): the only place
    batch directories are made or removed."""
    return worker.spool_root()


def batch_spool(root: Path, record: PackedBatch, *, rebuilt: bool = False) -> Path:
    """Where a published batch's parts are on this worker: derived from its own spool
    `root` and the (validated) batch id. `record.spool_dir` comes from a topic and is never
    used as a path; a batch id that is not a plain name raises ValueError."""
    return (rebuilt_dir if rebuilt else batch_dir)(root, record.batch_id)


def drop_batch_spool(root: Path, record: PackedBatch) -> list[Path]:
    """Remove a closed batch's spool directories (as packed and as rebuilt), under `root`
    only; an unsafe batch id removes nothing (ValueError)."""
    return remove_batch_dirs(root, record.batch_id)
