"""Credential health ahead of failures: expiry alerts and the status page's rows.

Plain functions (no Faust). A certificate that lapses, or a KSeF token still in use when
tokens end (2026-12-31), stops a context's deliveries; operators need weeks, not hours,
to renew or enroll. So a periodic check (hourly and at start, KSEF_CREDENTIAL_CHECK_S)
raises one alert per context and day: 30 days before a certificate expires, from
2026-12-01 for every context still on a token, and for a credential that cannot be
loaded at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pipeline.clock import WARSAW
from pipeline.credentials import ContextStatus
from pipeline.ksef.credentials import LAST_TOKEN_DAY, CertificateCredential, TokenCredential
from pipeline.stages.s3_submit.credential_hold import AuthResult
from topics.records import Alert

# Tokens authenticate until the end of LAST_TOKEN_DAY, Polish time.
TOKENS_END = dt.datetime.combine(LAST_TOKEN_DAY + dt.timedelta(days=1), dt.time(), WARSAW)

EXPIRY_WARNING_DAYS = 30
TOKEN_WARNING_FROM = dt.date(2026, 12, 1)
CRITICAL_DAYS = 7


def _at(now: dt.datetime) -> str:
    return now.isoformat(timespec="seconds")


def expiry_alert(status: ContextStatus, now: dt.datetime) -> Alert | None:
    """The alert a context's credential deserves today (None: nothing to say).

    Ids carry the day, so a repeat within the day is recognisable and one per day is sent.
    """
    today = now.date()
    nip, credential = status.nip, status.credential
    if credential is None:
        if status.problem is None:
            return None
        return Alert(alert_id=f"credentials-unusable:{nip}:{today}", kind="credentials-unusable",
                     severity="critical", at=_at(now), seller_nip=None if nip == "*" else nip,
                     message=f"credentials of context {nip} cannot be used: {status.problem}",
                     details={"problem": status.problem.problem, "path": status.problem.path})
    if isinstance(credential, TokenCredential):
        if today < TOKEN_WARNING_FROM:
            return None
        days = (LAST_TOKEN_DAY - today).days
        when = (f"in {days} day(s), after {LAST_TOKEN_DAY}" if days >= 0
                else f"since {LAST_TOKEN_DAY + dt.timedelta(days=1)}")
        return Alert(
            alert_id=f"token-ending:{nip}:{today}", kind="token-ending",
            severity="critical" if days < CRITICAL_DAYS else "warning", at=_at(now),
            seller_nip=nip,
            message=(f"seller context {nip} still authenticates with a KSeF token, which KSeF "
                     f"refuses {when}: configure a certificate (ksef-pipeline credentials "
                     f"enroll --nip {nip} --type Authentication)"),
            details={"method": "token", "last_token_day": LAST_TOKEN_DAY.isoformat(),
                     "days_left": days, "source": credential.source})
    assert isinstance(credential, CertificateCredential)
    info = credential.info
    days = info.days_to_expiry(now)
    if days > EXPIRY_WARNING_DAYS:
        return None
    state = f"expires in {days} day(s)" if days >= 0 else "has expired"
    return Alert(
        alert_id=f"certificate-expiring:{nip}:{today}", kind="certificate-expiring",
        severity="critical" if days < CRITICAL_DAYS else "warning", at=_at(now),
        seller_nip=nip,
        message=(f"the certificate of seller context {nip} ({info.subject}) {state} "
                 f"({info.not_after.isoformat(timespec='seconds')}): renew it before then"),
        details={"method": "certificate", "subject": info.subject, "days_left": days,
                 "not_after": info.not_after.isoformat(), "fingerprint":
                 info.fingerprint_sha256, "source": credential.source})


class ExpiryWatch:
    """Remembers which of today's alerts this worker already sent."""

    def __init__(self) -> None:
        self._sent: set[str] = set()

    def due(self, statuses: Iterable[ContextStatus], now: dt.datetime) -> list[Alert]:
        fresh = []
        for status in statuses:
            alert = expiry_alert(status, now)
            if alert is not None and alert.alert_id not in self._sent:
                self._sent.add(alert.alert_id)
                fresh.append(alert)
        return fresh


@dataclass(frozen=True)
class HealthRow:
    """One context on the status page."""

    nip: str
    method: str
    subject: str
    days_to_expiry: int | None
    problem: str
    last_auth: str
    expires_at: dt.datetime | None = None  # when the credential stops authenticating


def health_rows(statuses: Iterable[ContextStatus], last: Mapping[str, AuthResult],
                held: Mapping[str, str], now: dt.datetime) -> list[HealthRow]:
    """Method, subject, days to expiry and last authentication of every context;
    `held` maps a held context to its reason (also contexts with no credentials)."""
    rows = []
    seen = set()
    for status in statuses:
        seen.add(status.nip)
        credential = status.credential
        subject, days, expires = "", None, None
        if isinstance(credential, CertificateCredential):
            subject, days = credential.info.subject, credential.info.days_to_expiry(now)
            expires = credential.info.not_after
        elif isinstance(credential, TokenCredential):
            days = (LAST_TOKEN_DAY - now.date()).days
            expires = TOKENS_END
        problem = str(status.problem.problem) if status.problem else ""
        if status.nip in held:
            problem = ", ".join(p for p in (problem, f"held: {held[status.nip]}") if p)
        rows.append(HealthRow(status.nip, status.method, subject, days, problem,
                              _last(last.get(status.nip)), expires))
    for nip, reason in sorted(held.items()):
        if nip not in seen:
            rows.append(HealthRow(nip, "none", "", None, f"held: {reason}", _last(last.get(nip))))
    return rows


def _last(result: AuthResult | None) -> str:
    if result is None:
        return "-"
    return f"{'ok' if result.ok else result.reason} at {_at(result.at)}"
