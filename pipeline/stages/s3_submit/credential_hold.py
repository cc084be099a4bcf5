"""Seller contexts that cannot authenticate: their invoices wait, they are not rejected.

Plain functions and state (no Faust), used by the submit stage and unit-tested directly.
A rejection is final for the seller's billing, while a broken credential is fixed by an
operator within hours (a renewed certificate, a granted permission): so a context whose
authentication fails, or that has no credentials at all, is *held*. Its batches stay
unacknowledged and are re-tried every KSEF_CREDENTIAL_RECHECK_S and at once when a
credentials file changes; the other contexts keep flowing. One alert per context and
state change goes to `ksef.alerts`; an operator may turn the held invoices into
rejections (`ksef-pipeline held reject`, a `HeldRelease` on `ksef.control`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pipeline.ksef_api.errors import (
    KsefApiError,
    KsefAuthError,
    KsefCredentialError,
    KsefError,
    KsefRateLimited,
    KsefUnavailable,
    PartUploadError,
)
from pipeline.ksef_api.link import NoCredentialsError
from topics.records import Alert, HeldRelease

# Why a context is held (the alert's `details.reason`).
HOLD_REASONS: tuple[str, ...] = ("expired", "revoked", "no-permission", "bad-signature",
                                 "not-yet-valid", "no-credentials", "other")
# Rejection reasons when an operator releases held invoices (code, meaning).
RELEASE_REASONS: dict[str, tuple[int, str]] = {
    "no-credentials": (410, "no KSeF credentials for the seller context; rejected on an "
                            "operator's request (`ksef-pipeline held reject`)"),
    "auth-failed": (410, "the seller context could not authenticate to KSeF; rejected on an "
                         "operator's request (`ksef-pipeline held reject`)"),
}
RELEASE_ACTION = "reject"
HELD_KIND, RECOVERED_KIND = "credentials-held", "credentials-recovered"

Action = Literal["hold", "retry", "reject"]


@dataclass(frozen=True)
class Decision:
    """What a failed attempt means for the batch: wait for credentials, retry, or reject."""

    action: Action
    reason: str = ""  # hold reason (HOLD_REASONS) or rejection reason
    code: int = 0  # rejection code
    message: str = ""


def decide(exc: BaseException) -> Decision:
    """The policy for an exception raised while submitting one batch."""
    if isinstance(exc, NoCredentialsError):
        return Decision("hold", "no-credentials", message=str(exc))
    if isinstance(exc, KsefCredentialError):
        reason = exc.problem if exc.problem in ("expired", "not-yet-valid") else "other"
        return Decision("hold", reason, message=str(exc))
    if isinstance(exc, KsefAuthError):
        return Decision("hold", exc.reason, message=str(exc))
    if isinstance(exc, KsefUnavailable | KsefRateLimited | PartUploadError):
        return Decision("retry", message=str(exc))
    if isinstance(exc, KsefApiError):
        return Decision("reject", "batch-refused", exc.status or 500,
                        f"KSeF refused batch session: {exc}")
    if isinstance(exc, KsefError):
        return Decision("retry", message=str(exc))
    return Decision("retry", message=f"{type(exc).__name__}: {exc}")


def release_reason(hold_reason: str) -> str:
    """The rejection reason of a held invoice an operator released."""
    return "no-credentials" if hold_reason == "no-credentials" else "auth-failed"


def release_covers(release: HeldRelease | None, seller_nip: str, packed_at: str) -> bool:
    """Whether an operator's release applies to a batch of `seller_nip` packed then.

    Only batches packed up to the request: invoices arriving later wait as usual, so a
    release does not become a standing order to reject a context.
    """
    if release is None or release.action != RELEASE_ACTION or release.seller_nip != seller_nip:
        return False
    return _moment(packed_at) <= _moment(release.requested_at)


def _moment(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _at(now: dt.datetime) -> str:
    return now.isoformat(timespec="seconds")


@dataclass
class ContextHold:
    reason: str
    message: str
    since: dt.datetime
    retry_at: dt.datetime


@dataclass(frozen=True)
class AuthResult:
    """The last authentication outcome of a context, for the status page."""

    ok: bool
    reason: str
    at: dt.datetime


class Holds:
    """Which contexts are held, when to try them again, and the alerts on each change."""

    def __init__(self, recheck: dt.timedelta) -> None:
        self.recheck = recheck
        self._held: dict[str, ContextHold] = {}
        self.last: dict[str, AuthResult] = {}

    def held(self) -> dict[str, ContextHold]:
        return dict(self._held)

    def is_held(self, nip: str) -> bool:
        return nip in self._held

    def ready(self, nip: str, now: dt.datetime) -> bool:
        """Whether a batch of `nip` may be tried now."""
        hold = self._held.get(nip)
        return hold is None or hold.retry_at <= now

    def next_retry(self, now: dt.datetime) -> float | None:
        """Seconds until the next held context may be tried (None: none is held)."""
        if not self._held:
            return None
        soonest = min(h.retry_at for h in self._held.values())
        return max(0.0, (soonest - now).total_seconds())

    def wake(self, nip: str | None = None, now: dt.datetime | None = None) -> None:
        """Try `nip` (or every held context) at once: credentials changed, or an operator
        asked for a release."""
        for key, hold in self._held.items():
            if nip is None or key == nip:
                hold.retry_at = now or hold.since

    def hold(self, nip: str, decision: Decision, now: dt.datetime) -> Alert | None:
        """Record a failed authentication; the alert when the context's state changed."""
        self.last[nip] = AuthResult(False, decision.reason, now)
        current = self._held.get(nip)
        if current is not None and current.reason == decision.reason:
            current.retry_at = now + self.recheck
            current.message = decision.message
            return None
        self._held[nip] = ContextHold(decision.reason, decision.message, now, now + self.recheck)
        return held_alert(nip, decision.reason, decision.message, now)

    def ok(self, nip: str, now: dt.datetime) -> Alert | None:
        """Record an authenticated attempt; the recovery alert when the context was held."""
        self.last[nip] = AuthResult(True, "ok", now)
        hold = self._held.pop(nip, None)
        return None if hold is None else recovered_alert(nip, hold, now)


def held_alert(nip: str, reason: str, message: str, now: dt.datetime) -> Alert:
    return Alert(
        alert_id=f"{HELD_KIND}:{nip}:{reason}:{_at(now)}", kind=HELD_KIND,
        severity="critical", at=_at(now), seller_nip=nip,
        message=(f"seller context {nip} cannot authenticate to KSeF ({reason}): {message}. "
                 "Its invoices wait, none is rejected; fix the credentials (they are re-read "
                 f"without a restart) or reject them: ksef-pipeline held reject --nip {nip}"),
        details={"reason": reason, "since": _at(now), "error": message})


def recovered_alert(nip: str, hold: ContextHold, now: dt.datetime) -> Alert:
    return Alert(
        alert_id=f"{RECOVERED_KIND}:{nip}:{_at(now)}", kind=RECOVERED_KIND,
        severity="info", at=_at(now), seller_nip=nip,
        message=(f"seller context {nip} authenticates to KSeF again (held since "
                 f"{_at(hold.since)}, {hold.reason}); its waiting invoices are being sent"),
        details={"reason": hold.reason, "since": _at(hold.since)})


def held_contexts(alerts: Iterable[Alert]) -> dict[str, Alert]:
    """Contexts whose latest credential alert says held (seller NIP -> that alert), as
    read back from `ksef.alerts` by commands that run outside the workers."""
    latest: dict[str, Alert] = {}
    for alert in alerts:
        if alert.kind not in (HELD_KIND, RECOVERED_KIND) or not alert.seller_nip:
            continue
        known = latest.get(alert.seller_nip)
        if known is None or _moment(known.at) <= _moment(alert.at):
            latest[alert.seller_nip] = alert
    return {nip: alert for nip, alert in latest.items() if alert.kind == HELD_KIND}


def new_release(seller_nip: str, now: dt.datetime, requested_by: str = "",
                note: str = "") -> HeldRelease:
    """An operator's request to reject the held invoices of `seller_nip` (ValueError on a
    malformed NIP). Its time keeps microseconds: cut to the second, a batch packed in
    the same second just before the request was not covered and stayed held."""
    if not (len(seller_nip) == 10 and seller_nip.isdigit()):
        raise ValueError(f"seller NIP must be 10 digits, got {seller_nip!r}")
    at = now.astimezone(dt.UTC)
    return HeldRelease(request_id=f"release-{seller_nip}-{at.strftime('%Y%m%dT%H%M%SZ')}",
                       seller_nip=seller_nip, action=RELEASE_ACTION,
                       requested_at=at.isoformat(timespec="microseconds"),
                       requested_by=requested_by, note=note)
