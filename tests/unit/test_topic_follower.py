"""The follower's retry loop: a lasting failure is logged when it starts and then once a
minute, not at every 2 s retry (a broker restart made five followers log per retry)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline.runtime import topic_follower


class Lines:
    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def error(self, event: str, **kw: Any) -> None:
        self.errors.append(kw)


async def test_a_lasting_failure_is_logged_at_its_start_and_once_a_minute(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lines = Lines()
    monkeypatch.setattr(topic_follower, "log", lines)
    attempts = {"n": 0}

    async def no_pause(_s: float) -> None:
        return None

    async def follow() -> None:
        attempts["n"] += 1
        if attempts["n"] > 61:
            raise asyncio.CancelledError
        raise ConnectionError("broker gone")

    monkeypatch.setattr(topic_follower.asyncio, "sleep", no_pause)
    with pytest.raises(asyncio.CancelledError):
        await topic_follower.follow_forever(follow, "t")
    assert [e["failures"] for e in lines.errors] == [1, 31, 61]
