"""Typed failures of the KSeF API client.

Callers decide by type, not by parsing messages: `KsefUnavailable` means KSeF (or the
path to it) is down and the call may be tried again later; `KsefRateLimited` says when;
`KsefApiError` is KSeF's own refusal with its numeric code; `KsefAuthError` is a refusal
of identity or permissions. Messages never carry tokens, keys or invoice content.
`KsefError` and `KsefCredentialError` are the domain's (`pipeline.ksef.errors`: the
domain refuses unusable credentials without knowing this client), re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

from pipeline.ksef.errors import CredentialProblem as CredentialProblem
from pipeline.ksef.errors import KsefCredentialError as KsefCredentialError
from pipeline.ksef.errors import KsefError as KsefError

AuthFailureReason = Literal["expired", "revoked", "no-permission", "bad-signature",
                            "not-yet-valid", "other"]
AUTH_FAILURE_REASONS: tuple[str, ...] = get_args(AuthFailureReason)


class KsefUnavailable(KsefError):
    """No usable answer: connection refused or reset, timeout, 503 or another 5xx.

    `status` is None when no HTTP response arrived at all.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KsefRateLimited(KsefError):
    """KSeF answered 429 (or our own limiter refused) and asks to wait `retry_after` s."""

    def __init__(self, message: str, *, retry_after: float, category: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.category = category


class KsefApiError(KsefError):
    """KSeF refused the request: HTTP `status`, KSeF's numeric `code` and its wording."""

    def __init__(
        self,
        status: int,
        code: int | None,
        description: str,
        details: tuple[str, ...] = (),
        *,
        operation: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.description = description
        self.details = details
        self.operation = operation
        where = f"{operation}: " if operation else ""
        code_text = f" code {code}" if code is not None else ""
        more = f" ({'; '.join(details)})" if details else ""
        super().__init__(f"{where}HTTP {status}{code_text}: {description}{more}")


class KsefAuthError(KsefApiError):
    """Authentication failed or was refused (401/403, or an auth operation status >= 300).

    `reason` is machine-readable (one of AUTH_FAILURE_REASONS) so the stream can alert
    with it; `status` 0 means the client refused before sending (e.g. an expired
    certificate).
    """

    def __init__(
        self,
        status: int,
        code: int | None,
        description: str,
        details: tuple[str, ...] = (),
        *,
        operation: str = "",
        reason: AuthFailureReason = "other",
    ) -> None:
        super().__init__(status, code, description, details, operation=operation)
        self.reason: AuthFailureReason = reason


class KsefProtocolError(KsefError):
    """KSeF (or the emulator) answered with something that breaks the documented contract."""


class PartUploadError(KsefError):
    """Some batch parts could not be uploaded; the others were (see `uploaded`)."""

    def __init__(self, failures: Mapping[int, KsefError], uploaded: tuple[int, ...]) -> None:
        self.failures = dict(failures)
        self.uploaded = uploaded
        parts = ", ".join(f"part {n}: {err}" for n, err in sorted(self.failures.items()))
        super().__init__(f"{len(self.failures)} part upload(s) failed: {parts}")
