"""Judging each configured context for operators (`ksef-pipeline credentials list|check`).

Pure: takes `ContextStatus` rows and instants, returns rows and verdicts; the command
does the I/O (live authentication, printing). Exit codes of `check`, worst wins:
0 fine, 1 cannot authenticate now (a problem, or KSeF refused), 2 will not from the
date asked (a token after LAST_TOKEN_DAY, a certificate expiring within the window).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipeline.credentials.store import ContextStatus
from pipeline.ksef.credentials import LAST_TOKEN_DAY, CertificateCredential

OK, NOW_FAILS, WILL_FAIL = 0, 1, 2
TOKEN_END = dt.datetime.combine(LAST_TOKEN_DAY + dt.timedelta(days=1), dt.time(), dt.UTC)
TOKEN_LAST_SECOND = TOKEN_END - dt.timedelta(seconds=1)  # shown as a token's "not after"


@dataclass(frozen=True)
class ContextRow:
    """What `list` shows of one context (nothing secret)."""

    nip: str
    method: str
    source: str
    subject: str | None
    not_after: dt.datetime | None  # a token's is the last second of LAST_TOKEN_DAY
    days_to_expiry: int | None
    problem: str | None

    def as_json(self) -> dict[str, object]:
        return {"nip": self.nip, "method": self.method, "source": self.source,
                "subject": self.subject,
                "not_after": self.not_after.isoformat() if self.not_after else None,
                "days_to_expiry": self.days_to_expiry, "problem": self.problem}


def row_of(status: ContextStatus, now: dt.datetime) -> ContextRow:
    credential = status.credential
    problem = (f"{status.problem.problem}: {status.problem.detail}"
               if status.problem is not None else None)
    if isinstance(credential, CertificateCredential):
        info = credential.info
        return ContextRow(status.nip, status.method, status.source, info.subject,
                          info.not_after, info.days_to_expiry(now), problem)
    if credential is not None:  # a token: it ends with 2026
        return ContextRow(status.nip, status.method, status.source, None, TOKEN_LAST_SECOND,
                          (TOKEN_END - now) // dt.timedelta(days=1), problem)
    return ContextRow(status.nip, status.method, status.source, None, None, None, problem)


def future_verdict(status: ContextStatus, at: dt.datetime, within_days: int
                   ) -> tuple[int, str | None]:
    """(WILL_FAIL with why, or OK with an optional warning) for the date `at`."""
    credential = status.credential
    if isinstance(credential, CertificateCredential):
        info = credential.info
        days = info.days_to_expiry(at)
        if days < within_days:
            when = "expired" if days < 0 else f"expires in {days} days"
            return WILL_FAIL, (f"certificate {when} (not after {info.not_after:%Y-%m-%d}, "
                               f"window {within_days} days from {at:%Y-%m-%d})")
        return OK, None
    if credential is not None:
        if at >= TOKEN_END:
            return WILL_FAIL, (f"KSeF tokens authenticate only until {LAST_TOKEN_DAY}; "
                               f"move this context to a certificate")
        days = (TOKEN_END - at) // dt.timedelta(days=1)
        return OK, (f"KSeF token, accepted only until {LAST_TOKEN_DAY} "
                    f"({days} days left): move to a certificate")
    return OK, None
