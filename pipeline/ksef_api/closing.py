"""How a session close that did not plainly succeed is resolved (pure decisions).

A close is not idempotent in KSeF and a lost answer is common (5xx and HTML error
bodies on close, 21173/21205 right after the upload): the session's status decides
whether the session is closed, must be closed again, or is refused for good.
"""

from __future__ import annotations

from pipeline.ksef_api.results import (
    SESSION_CANCELLED,
    SESSION_OPEN,
    SESSION_STATUS_FORBIDS,
)

SESSION_NOT_FOUND = 21173  # right after the upload: KSeF has not registered the session yet
PACKAGE_EMPTY = 21205  # right after the upload: KSeF has not registered the parts yet

# What kind of failure a close met.
ALREADY = "status-forbids"  # 21180: perhaps closed already
NOT_YET = "not-registered-yet"  # 21173 / 21205
UNKNOWN_STATE = "unknown-state"  # 5xx, HTML body, reset, timeout: perhaps closed
# Verdicts.
CLOSED, AGAIN, REFUSED = "closed", "again", "refused"

CLOSE_ATTEMPTS = 6
CLOSE_RETRY_FIRST_S = 1.0
CLOSE_RETRY_MAX_S = 15.0


def close_failure_kind(http_status: int, code: int | None) -> str:
    """The kind of a KSeF refusal of a close; REFUSED for a plain refusal."""
    if code == SESSION_STATUS_FORBIDS:
        return ALREADY
    if code in (SESSION_NOT_FOUND, PACKAGE_EMPTY):
        return NOT_YET
    if http_status >= 500:
        return UNKNOWN_STATE
    return REFUSED


def close_verdict(kind: str, session_status: int) -> str:
    """CLOSED (KSeF took the close), AGAIN (still open: close it again) or REFUSED."""
    if session_status == SESSION_CANCELLED:
        return REFUSED
    if session_status != SESSION_OPEN:
        return CLOSED  # processing, closed or done: the close went through
    if kind == ALREADY:
        return REFUSED  # open, yet KSeF says its status forbids a close
    return AGAIN
