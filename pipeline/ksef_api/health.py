"""What the client saw of KSeF on each request, for self-observed outage detection.

The mode-state stream wants to notice an outage before MF announces one: a run of
`UNAVAILABLE`/`SERVER_ERROR` outcomes with no `OK` in between is such a sign. Any answer
KSeF gives on purpose (2xx, 4xx, 429) shows it is up.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    OK = "ok"  # 2xx
    REFUSED = "refused"  # 4xx other than 429: KSeF is up and said no
    RATE_LIMITED = "rate-limited"  # 429
    SERVER_ERROR = "server-error"  # 5xx other than 503
    UNAVAILABLE = "unavailable"  # 503, connection refused/reset, timeout

    @property
    def ksef_up(self) -> bool:
        return self in (Outcome.OK, Outcome.REFUSED, Outcome.RATE_LIMITED)

    @classmethod
    def of_status(cls, status: int | None) -> Outcome:
        if status is None or status == 503:
            return cls.UNAVAILABLE
        if status >= 500:
            return cls.SERVER_ERROR
        if status == 429:
            return cls.RATE_LIMITED
        if status >= 400:
            return cls.REFUSED
        return cls.OK


@dataclass(frozen=True)
class HealthEvent:
    """One request's outcome. `endpoint` is method + category, never a URL with secrets."""

    context: str
    endpoint: str
    outcome: Outcome
    status: int | None
    seconds: float
    at: dt.datetime


HealthObserver = Callable[[HealthEvent], None]


def notify(observer: HealthObserver | None, event: HealthEvent) -> None:
    """Call the observer; its failure is logged, never allowed to fail the request."""
    if observer is None:
        return
    try:
        observer(event)
    except Exception:  # an observer bug must not turn a good call into a failed one
        log.exception("KSeF health observer failed on %s", event.endpoint)
