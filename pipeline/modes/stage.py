"""The `mode` stage: everything the mode-state stream runs in a worker.

`ksef-pipeline worker --stages mode` (or among all stages) registers the Latarnia
poller, the operator endpoint, the mode-state agent and table, the deadline tracker and
the status page. Environment: see `pipeline.modes` (package docstring).
"""

from __future__ import annotations

import faust

from pipeline.modes import announcements, deadline_tracker, readings, state, web

__all__ = ["announcements", "deadline_tracker", "install", "readings", "state", "web"]


def install(app: faust.App) -> None:
    """The parts built from settings when the worker starts (the deadline tracker)."""
    deadline_tracker.install(app)
