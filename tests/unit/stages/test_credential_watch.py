"""Expiry and token-end alerts (one per context and day) and the status page's rows."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.credentials import ContextStatus
from pipeline.ksef.credentials import CertificateCredential, TokenCredential
from pipeline.ksef.selfsigned import TestCertificate, mint_test_certificate
from pipeline.ksef_api.errors import KsefCredentialError
from pipeline.stages.s3_submit.credential_hold import AuthResult
from pipeline.stages.s3_submit.credential_watch import ExpiryWatch, expiry_alert, health_rows

NIP = "5265877635"
NOON = dt.time(12, tzinfo=dt.UTC)


def on(day: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), NOON)


@pytest.fixture(scope="module")
def cert() -> TestCertificate:
    """Valid until 2027-03-01 12:00 UTC."""
    return mint_test_certificate(NIP, key="ec", not_before=on("2026-03-01"),
                                 not_after=on("2027-03-01"))


def cert_status(cert: TestCertificate) -> ContextStatus:
    credential = CertificateCredential(NIP, cert.certificate, cert.private_key, source="k.pem")
    return ContextStatus(NIP, "certificate", "k.pem", credential, None)


def token_status() -> ContextStatus:
    return ContextStatus(NIP, "token", "tokens.json", TokenCredential(NIP, "t", "tokens.json"),
                         None)


@pytest.mark.parametrize(("day", "alerted", "days_left", "severity"), [
    ("2026-11-30", False, None, None),
    ("2026-12-01", True, 30, "warning"),
    ("2026-12-25", True, 6, "critical"),
    ("2026-12-31", True, 0, "critical"),
    ("2027-01-02", True, -2, "critical"),
])
def test_a_token_alerts_from_december_first(day: str, alerted: bool, days_left: int | None,
                                            severity: str | None) -> None:
    alert = expiry_alert(token_status(), on(day))
    assert (alert is not None) == alerted
    if alert is not None:
        assert alert.kind == "token-ending" and alert.alert_id == f"token-ending:{NIP}:{day}"
        assert alert.details["days_left"] == days_left and alert.severity == severity
        assert "enroll" in alert.message


@pytest.mark.parametrize(("day", "days_left"), [
    ("2027-01-29", None), ("2027-01-30", 30), ("2027-02-28", 1), ("2027-03-02", -1)])
def test_a_certificate_alerts_thirty_days_before_it_expires(
        cert: TestCertificate, day: str, days_left: int | None) -> None:
    alert = expiry_alert(cert_status(cert), on(day))
    if days_left is None:
        assert alert is None
        return
    assert alert is not None and alert.kind == "certificate-expiring"
    assert alert.details["days_left"] == days_left and alert.seller_nip == NIP
    assert alert.details["not_after"].startswith("2027-03-01")


def test_an_unusable_entry_alerts_and_a_healthy_one_does_not(cert: TestCertificate) -> None:
    broken = ContextStatus(NIP, "unknown", "k.pem", None,
                           KsefCredentialError(NIP, "permissions", "mode 0644", path="k.pem"))
    alert = expiry_alert(broken, on("2026-06-01"))
    assert alert is not None and alert.kind == "credentials-unusable"
    assert alert.details == {"problem": "permissions", "path": "k.pem"}
    assert expiry_alert(cert_status(cert), on("2026-06-01")) is None


def test_one_alert_per_context_per_day() -> None:
    watch = ExpiryWatch()
    assert len(watch.due([token_status()], on("2026-12-02"))) == 1
    assert watch.due([token_status()], on("2026-12-02") + dt.timedelta(hours=5)) == []
    assert len(watch.due([token_status()], on("2026-12-03"))) == 1


def test_health_rows_show_method_subject_days_and_last_authentication(
        cert: TestCertificate) -> None:
    now = on("2027-02-01")
    last = {NIP: AuthResult(False, "revoked", now)}
    rows = health_rows([cert_status(cert)], last, {NIP: "revoked", "1111111111":
                                                    "no-credentials"}, now)
    mine, missing = rows
    assert mine.method == "certificate" and f"VATPL-{NIP}" in mine.subject
    assert mine.days_to_expiry == 28 and mine.problem == "held: revoked"
    assert mine.last_auth == "revoked at 2027-02-01T12:00:00+00:00"
    assert (missing.nip, missing.method, missing.problem) == ("1111111111", "none",
                                                              "held: no-credentials")
    token_row, = health_rows([token_status()], {}, {}, on("2026-12-21"))
    assert token_row.days_to_expiry == 10 and token_row.last_auth == "-"
