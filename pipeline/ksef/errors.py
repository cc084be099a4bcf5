"""The KSeF error root and the domain's own refusal: credentials that cannot be used.

They live in the domain because the domain raises them (`pipeline.ksef.credentials`
parses certificates, keys and tokens and refuses unusable ones) and must not import the
API client. `pipeline.ksef_api.errors` builds its typed failures on `KsefError` and
re-exports both names, so callers catch them from either place as the same classes.
"""

from __future__ import annotations

from typing import Literal

CredentialProblem = Literal["missing-file", "permissions", "wrong-password", "unreadable",
                            "invalid", "expired", "not-yet-valid"]


class KsefError(Exception):
    """Base of every KSeF error: the API client's (`pipeline.ksef_api`) and the refusal of
    unusable credentials below."""


class KsefCredentialError(KsefError):
    """A context's configured credentials are unusable (missing or unsafe file, wrong
    password, key not matching the certificate, expired certificate...).

    Not a refusal by KSeF: nothing was sent. `problem` is machine-readable; `path` names
    the file at fault (never its content).
    """

    def __init__(
        self, nip: str, problem: CredentialProblem, message: str, *, path: str | None = None
    ) -> None:
        self.nip = nip
        self.problem: CredentialProblem = problem
        self.path = path
        self.detail = message
        where = f" ({path})" if path else ""
        super().__init__(f"credentials of context {nip}{where}: {message}")
