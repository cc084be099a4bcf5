"""Faust keeps records fetched around a rebalance instead of clearing them on resume."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from mode.utils.queues import FlowControlEvent, FlowControlQueue

from pipeline.faust_fixes import keep_buffers_on_resume, skipped_records_stay_unacknowledged


def test_compiled_stream_iterator_is_in_use() -> None:
    # The fix is only applied where skipped records stay unacknowledged.
    assert skipped_records_stay_unacknowledged()


def test_resume_keeps_buffered_records_and_restores_flow() -> None:
    async def scenario() -> tuple[bool, int, bool]:
        flow = FlowControlEvent(initially_suspended=True)
        buffer: FlowControlQueue[str] = FlowControlQueue(flow_control=flow,
                                                         clear_on_resume=True)
        assert keep_buffers_on_resume(SimpleNamespace(flow_control=flow))
        flow.resume()
        await buffer.put("offset-12")
        flow.suspend()
        flow.resume()  # Faust's recovery resumes after its seek: the record must stay
        return flow.is_active(), buffer.qsize(), flow._resume.is_set()

    active, size, resumed = asyncio.run(scenario())
    assert (active, size, resumed) == (True, 1, True)


def test_unpatched_resume_clears_the_buffer() -> None:
    # Documents the Faust behaviour the fix removes: without it the record is gone.
    async def scenario() -> int:
        flow = FlowControlEvent(initially_suspended=False)
        buffer: FlowControlQueue[str] = FlowControlQueue(flow_control=flow,
                                                         clear_on_resume=True)
        await buffer.put("offset-12")
        flow.resume()
        return buffer.qsize()

    assert asyncio.run(scenario()) == 0


def test_explicit_clear_still_empties_buffers_on_revoke() -> None:
    async def scenario() -> int:
        flow = FlowControlEvent(initially_suspended=False)
        buffer: FlowControlQueue[str] = FlowControlQueue(flow_control=flow,
                                                         clear_on_resume=True)
        keep_buffers_on_resume(SimpleNamespace(flow_control=flow))
        await buffer.put("offset-12")
        flow.suspend()
        flow.clear()  # what Faust does when partitions are revoked or the worker stops
        return buffer.qsize()

    assert asyncio.run(scenario()) == 0
