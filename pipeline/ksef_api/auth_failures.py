"""KSeF's authentication failures as one machine-readable reason, for alerts.

Sources (open-api.json): the status of `GET /auth/{referenceNumber}` (415 no
permissions, 425 authentication revoked, 450 bad token, 460 certificate error with the
detail saying which, 470/480/500/550 other) and the exception codes of
`POST /auth/xades-signature` (9102 no signature, 9105 invalid signature, 21115 invalid
certificate, ...). KSeF's 460 "Nieważny certyfikat" (certificate not valid) does not
say whether it expired or is not valid yet; the certificate's own dates decide when
the caller knows them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pipeline.ksef_api.errors import AuthFailureReason

NO_PERMISSION = 415
AUTH_REVOKED = 425
BAD_TOKEN = 450
CERTIFICATE_ERROR = 460

# POST /auth/xades-signature exception codes that mean "the signature is not acceptable"
_BAD_SIGNATURE_CODES = {9102, 9103, 9105, 21115, 21406}


def _says(details: Iterable[str], *words: str) -> bool:
    text = " ".join(details).lower()
    return any(word in text for word in words)


def reason_of_status(
    code: int | None,
    details: Iterable[str] = (),
    *,
    not_before: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> AuthFailureReason:
    """The reason behind a failed authentication operation status (`GET /auth/{ref}`)."""
    details = tuple(details)
    if code == NO_PERMISSION:
        return "no-permission"
    if code == CERTIFICATE_ERROR:
        if _says(details, "odwołany", "zawieszony", "revoked", "suspended"):
            return "revoked"
        if _says(details, "nieważny", "expired", "not valid"):
            if now is not None and not_before is not None and now < not_before:
                return "not-yet-valid"
            return "expired"
        return "bad-signature"  # chain not verifiable, untrusted or malformed certificate
    if code == BAD_TOKEN:
        if _says(details, "unieważniony", "revoked"):
            return "revoked"
        return "other"
    return "other"


def reason_of_exception(code: int | None) -> AuthFailureReason:
    """The reason behind a 400 of `POST /auth/xades-signature` (ExceptionCode)."""
    return "bad-signature" if code in _BAD_SIGNATURE_CODES else "other"
