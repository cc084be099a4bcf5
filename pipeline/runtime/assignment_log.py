"""One log line per rebalance of the app's consumer group: the partitions this worker
holds now and those it gave up. Operators (and the multi-worker tests) read from it that
the group has settled after a worker joined or left."""

from __future__ import annotations

from typing import Any

from pipeline.runtime import logs

log = logs.get(__name__)


class AssignmentLog:
    """Logs each new assignment of the app group against the one before."""

    def __init__(self) -> None:
        self.held: set[tuple[str, int]] = set()

    async def assigned(self, sender: Any, assigned: set[Any], **_: Any) -> None:
        now = {(tp.topic, tp.partition) for tp in assigned}
        given_up = self.held - now
        self.held = now
        log.info("app group partitions assigned", held=sorted({p for _, p in now}),
                 given_up=sorted({p for _, p in given_up}), topics=len({t for t, _ in now}))


def log_assignments(app: Any) -> AssignmentLog:
    """Connect an `AssignmentLog` to the app's rebalance signal."""
    watcher = AssignmentLog()
    app.on_partitions_assigned.connect(watcher.assigned)
    return watcher
