"""A close that did not plainly succeed is resolved from the session status, never by a
blind resend (5xx and HTML bodies on close produced mass duplicates for integrators)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.ksef_api import closing
from pipeline.ksef_api.client import KsefClient
from pipeline.ksef_api.closing import (
    AGAIN,
    ALREADY,
    CLOSED,
    NOT_YET,
    REFUSED,
    UNKNOWN_STATE,
    close_failure_kind,
    close_verdict,
)
from pipeline.ksef_api.errors import KsefApiError, KsefProtocolError, KsefUnavailable

OPEN, PROCESSING, CANCELLED = 100, 150, 440


def test_failure_kinds() -> None:
    assert close_failure_kind(400, 21180) == ALREADY
    assert close_failure_kind(400, 21173) == NOT_YET
    assert close_failure_kind(400, 21205) == NOT_YET
    assert close_failure_kind(502, None) == UNKNOWN_STATE
    assert close_failure_kind(400, 21405) == REFUSED


def test_verdicts_from_the_session_status() -> None:
    for kind in (ALREADY, NOT_YET, UNKNOWN_STATE):
        assert close_verdict(kind, PROCESSING) == CLOSED
        assert close_verdict(kind, CANCELLED) == REFUSED
    assert close_verdict(UNKNOWN_STATE, OPEN) == AGAIN
    assert close_verdict(NOT_YET, OPEN) == AGAIN
    assert close_verdict(ALREADY, OPEN) == REFUSED


class Script:
    """Answers to the close requests in turn, and the session status after each."""

    def __init__(self, answers: list[BaseException | None], statuses: list[int]) -> None:
        self.answers, self.statuses = answers, statuses
        self.closes = 0
        self.status_reads = 0

    async def authed(self, *args: Any, **kwargs: Any) -> None:
        self.closes += 1
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer

    async def status(self, ref: str) -> Any:
        self.status_reads += 1
        return SimpleNamespace(code=self.statuses.pop(0))


async def _close(script: Script) -> None:
    fake = SimpleNamespace(_authed=script.authed, session_status=script.status)
    await KsefClient._close(fake, "ref-1", lambda token: None, "/sessions/batch/ref-1/close")  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(closing, "CLOSE_RETRY_FIRST_S", 0.0)
    import pipeline.ksef_api.client as client

    monkeypatch.setattr(client, "CLOSE_RETRY_FIRST_S", 0.0)


async def test_a_502_on_close_of_a_session_ksef_closed_is_not_resent() -> None:
    script = Script([KsefUnavailable("502 Bad Gateway")], [PROCESSING])
    await _close(script)
    assert (script.closes, script.status_reads) == (1, 1)


async def test_an_html_body_on_close_of_a_session_still_open_closes_it_again() -> None:
    script = Script([KsefProtocolError("<html>"), None], [OPEN])
    await _close(script)
    assert script.closes == 2


async def test_21205_right_after_upload_is_retried_after_a_status_check() -> None:
    empty = KsefApiError(400, 21205, "package cannot be empty")
    missing = KsefApiError(400, 21173, "session not found")
    script = Script([empty, missing, None], [OPEN, OPEN])
    await _close(script)
    assert (script.closes, script.status_reads) == (3, 2)


async def test_a_plain_refusal_or_a_cancelled_session_raises() -> None:
    with pytest.raises(KsefApiError):
        await _close(Script([KsefApiError(400, 21405, "bad")], []))
    with pytest.raises(KsefUnavailable):
        await _close(Script([KsefUnavailable("503")], [CANCELLED]))
