"""What `ksef.sessions` says about each batch: the resume point after a crash.

Steps, in order: opening -> opened -> part-uploaded (one per part) -> closed ->
completed, or failed. Every step is written before (opening) or after (the rest) the side
effect it names, so a restarted submitter knows whether a session exists, which parts
KSeF already has, and whether it was closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from topics.records import SessionStep

OPENING, OPENED, PART_UPLOADED, CLOSED, COMPLETED, FAILED = (
    "opening", "opened", "part-uploaded", "closed", "completed", "failed")
FINAL = frozenset({CLOSED, COMPLETED, FAILED})


@dataclass
class BatchProgress:
    batch_id: str
    seller_nip: str
    step: str
    session_ref: str | None = None
    opened: dict[str, Any] = field(default_factory=dict)  # details of the opened step
    parts_done: set[int] = field(default_factory=set)
    # the `.submitted` record a closed correction (interactive lane) answered
    origin: str | None = None


class Journal:
    """Progress per batch. A step may be applied twice (written here, then read back by
    the worker's follower of `ksef.sessions`): the second time changes nothing."""

    def __init__(self) -> None:
        self.batches: dict[str, BatchProgress] = {}
        self._seen: dict[str, set[tuple[str, str, str | None, object]]] = {}

    def apply(self, step: SessionStep) -> None:
        seen = self._seen.setdefault(step.batch_id, set())
        signature = (step.step, step.at, step.session_ref, step.details.get("ordinal"))
        if signature in seen:
            return
        seen.add(signature)
        progress = self.batches.get(step.batch_id)
        if progress is None or (step.step == OPENING and progress.step not in FINAL):
            progress = self.batches[step.batch_id] = BatchProgress(
                step.batch_id, step.seller_nip, step.step)
        if progress.step in (COMPLETED, FAILED) and step.step not in (COMPLETED, FAILED):
            return  # a late duplicate of an earlier step changes nothing
        if step.step == PART_UPLOADED:
            progress.parts_done.add(int(step.details["ordinal"]))
            return
        progress.step = step.step
        if step.session_ref:
            progress.session_ref = step.session_ref
        if step.step == OPENED:
            progress.opened = dict(step.details)
            progress.parts_done = set()
        if step.step == CLOSED and isinstance(step.details.get("origin"), str):
            progress.origin = step.details["origin"]

    def get(self, batch_id: str) -> BatchProgress | None:
        return self.batches.get(batch_id)
