"""Held contexts: which failures hold a batch, the alerts per state change, releases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.ksef_api.errors import (
    AUTH_FAILURE_REASONS,
    KsefApiError,
    KsefAuthError,
    KsefCredentialError,
    KsefProtocolError,
    KsefRateLimited,
    KsefUnavailable,
    PartUploadError,
)
from pipeline.ksef_api.link import NoCredentialsError
from pipeline.stages.s3_submit.credential_hold import (
    HOLD_REASONS,
    RELEASE_REASONS,
    Decision,
    Holds,
    decide,
    held_contexts,
    new_release,
    release_covers,
    release_reason,
)

NIP = "5265877635"
OTHER = "7010002137"
T0 = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def auth_error(reason: str) -> KsefAuthError:
    return KsefAuthError(400, 21115, "refused", operation="auth", reason=reason)  # type: ignore[arg-type]


@pytest.mark.parametrize("reason", AUTH_FAILURE_REASONS)
def test_every_auth_refusal_holds_with_its_reason(reason: str) -> None:
    decision = decide(auth_error(reason))
    assert (decision.action, decision.reason) == ("hold", reason)
    assert reason in HOLD_REASONS


@pytest.mark.parametrize(("problem", "reason"), [
    ("expired", "expired"), ("not-yet-valid", "not-yet-valid"), ("permissions", "other"),
    ("missing-file", "other"), ("wrong-password", "other"), ("invalid", "other")])
def test_unusable_credentials_hold(problem: str, reason: str) -> None:
    exc = KsefCredentialError(NIP, problem, "detail", path="/x")  # type: ignore[arg-type]
    decision = decide(exc)
    assert (decision.action, decision.reason) == ("hold", reason)
    assert "/x" in decision.message


def test_no_credentials_holds_but_a_stray_key_error_does_not() -> None:
    assert decide(NoCredentialsError("no KSeF credentials for seller")) == Decision(
        "hold", "no-credentials", message="no KSeF credentials for seller")
    assert decide(KeyError("bug")).action == "retry"


@pytest.mark.parametrize("exc", [
    KsefUnavailable("down", status=503), KsefRateLimited("slow", retry_after=3),
    PartUploadError({1: KsefUnavailable("x")}, ()), KsefProtocolError("odd")])
def test_ksef_trouble_is_retried(exc: Exception) -> None:
    assert decide(exc).action == "retry"


def test_a_refused_session_that_is_not_about_identity_is_rejected() -> None:
    decision = decide(KsefApiError(400, 21405, "bad package", operation="open"))
    assert (decision.action, decision.reason, decision.code) == ("reject", "batch-refused", 400)


def test_release_reasons_are_declared_with_the_other_reasons() -> None:
    assert release_reason("no-credentials") == "no-credentials"
    assert {release_reason(r) for r in AUTH_FAILURE_REASONS} == {"auth-failed"}
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    for reason, (code, _) in RELEASE_REASONS.items():
        assert f"| `{reason}` | {code} |" in readme
    assert "`no-ksef-token`" not in readme  # no longer produced: such invoices wait


def test_one_alert_per_state_change_and_a_recovery() -> None:
    holds = Holds(dt.timedelta(seconds=30))
    first = holds.hold(NIP, decide(NoCredentialsError("none")), T0)
    assert first is not None and first.kind == "credentials-held"
    assert first.details["reason"] == "no-credentials" and first.seller_nip == NIP
    assert "held reject --nip 5265877635" in first.message
    assert holds.hold(NIP, decide(NoCredentialsError("none")), T0 + dt.timedelta(seconds=40)
                      ) is None  # same state: no repeat
    changed = holds.hold(NIP, decide(auth_error("revoked")), T0 + dt.timedelta(seconds=80))
    assert changed is not None and changed.details["reason"] == "revoked"
    assert changed.alert_id != first.alert_id
    assert holds.ok(OTHER, T0) is None  # never held: nothing to say
    recovered = holds.ok(NIP, T0 + dt.timedelta(minutes=5))
    assert recovered is not None and recovered.kind == "credentials-recovered"
    assert recovered.severity == "info" and recovered.details["reason"] == "revoked"
    assert not holds.is_held(NIP) and holds.last[NIP].ok


def test_a_held_context_waits_for_its_recheck_or_a_wake_up() -> None:
    holds = Holds(dt.timedelta(seconds=30))
    assert holds.next_retry(T0) is None
    holds.hold(NIP, decide(auth_error("expired")), T0)
    assert not holds.ready(NIP, T0 + dt.timedelta(seconds=29))
    assert holds.ready(OTHER, T0)  # other contexts are never held back
    assert holds.next_retry(T0 + dt.timedelta(seconds=10)) == 20.0
    assert holds.ready(NIP, T0 + dt.timedelta(seconds=30))
    holds.hold(NIP, decide(auth_error("expired")), T0 + dt.timedelta(seconds=30))
    holds.wake()  # the credentials file changed
    assert holds.ready(NIP, T0 + dt.timedelta(seconds=31))
    assert holds.last[NIP].reason == "expired"


def test_a_release_covers_batches_packed_up_to_the_request_only() -> None:
    release = new_release(NIP, T0, "ops", "seller closed")
    assert release.request_id == "release-5265877635-20261204T120000Z"
    assert release_covers(release, NIP, "2026-12-04T11:59:00+00:00")
    assert release_covers(release, NIP, "2026-12-04T13:00:00+01:00")  # same instant
    assert not release_covers(release, NIP, "2026-12-04T12:00:01+00:00")
    assert not release_covers(release, OTHER, "2026-12-04T11:00:00+00:00")
    assert not release_covers(None, NIP, "2026-12-04T11:00:00+00:00")
    with pytest.raises(ValueError, match="10 digits"):
        new_release("123", T0)


def test_a_release_covers_a_batch_packed_earlier_in_the_same_second() -> None:
    """Seen in CI: a batch packed at .335 s was not covered by a request made at .900 s
    of the same second while the request's time was cut to whole seconds."""
    release = new_release(NIP, T0 + dt.timedelta(milliseconds=900))
    assert release_covers(release, NIP, "2026-12-04T12:00:00.335+00:00")
    assert not release_covers(release, NIP, "2026-12-04T12:00:00.950+00:00")


def test_held_contexts_follow_the_latest_credential_alert() -> None:
    holds = Holds(dt.timedelta(seconds=30))
    held = holds.hold(NIP, decide(auth_error("revoked")), T0)
    other = holds.hold(OTHER, decide(NoCredentialsError("none")), T0)
    recovered = holds.ok(OTHER, T0 + dt.timedelta(minutes=1))
    assert held and other and recovered
    assert set(held_contexts([recovered, held, other])) == {NIP}
