"""Work-arounds for Faust 0.15 behaviour that loses records; applied to our one app.

Faust clears every stream buffer when it resumes the flow of records after a rebalance
or a table recovery. It resumes *after* seeking the stream partitions back to their
committed offsets, with the fetcher already running, so the records fetched between the
seek and the resume are thrown away although their offsets count as read: they are not
fetched again until the worker restarts, and a single-record gap at the head of a
partition is even committed past. Seen as invoices never sealed after a restart.

Keeping the buffers on resume is safe where Faust's stream iterator does not acknowledge
the records it skips (its compiled iterator): records of an older consumer generation
are skipped there and fetched again after the seek. Records fetched just before the
seek then arrive twice; each stage drops a repeated offset (see `ReplayGuard`) or
holds it with its first copy.
"""

from __future__ import annotations

from typing import Any

from faust import streams


def skipped_records_stay_unacknowledged() -> bool:
    """True when Faust streams through its compiled iterator (the usual wheels)."""
    return getattr(streams, "_CStreamIterator", None) is not None


def keep_buffers_on_resume(app: Any) -> bool:
    """Make the app's flow control resume without clearing the stream buffers.

    Returns False (and changes nothing) where skipped records would be acknowledged.
    """
    if not skipped_records_stay_unacknowledged():
        return False
    flow = app.flow_control

    def resume() -> None:
        flow._suspend.clear()
        flow._resume.set()

    flow.resume = resume
    return True
