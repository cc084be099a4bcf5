"""`CredentialStore`: each seller context's credential, from files and the environment.

Where a context's credential comes from, first match wins:
1. the credentials file (KSEF_CREDENTIALS_FILE, format in `config`): token or certificate;
2. KSEF_TOKEN_<NIP>: a KSeF token in the environment (as before);
3. the legacy tokens file (KSEF_TOKENS_FILE): JSON `{"<NIP>": "<token>"}` (as before).
Every file is re-read when it changes (mtime, size, inode or mode of the credentials
file, the tokens file, or any file an entry names), so a renewed certificate or a fixed
permission is used without a restart. One context's broken entry never hides the
others: `get` raises only for the context asked about, and `contexts` lists every
context with its problem.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from pipeline.credentials.config import (
    FILE_CONTEXT,
    NIP,
    ContextEntry,
    parse_credentials_file,
)
from pipeline.ksef.credentials import (
    CertificateCredential,
    Credential,
    TokenCredential,
    parse_certificate,
    parse_pkcs12,
    parse_private_key,
)
from pipeline.ksef.errors import KsefCredentialError
from pipeline.runtime import redaction
from pipeline.runtime.secret_files import (
    OTHERS_MAY_ACCESS,
    Stamp,
    read_file,
    read_password,
    read_token,
    stamp,
)
from pipeline.runtime.settings import TOKEN_ENV_PREFIX, token_variables


@dataclass(frozen=True)
class ContextStatus:
    """One configured context for operators: how it authenticates and what is wrong.

    `credential` is None when it cannot be loaded; an expired certificate has both the
    credential (its dates are still worth showing) and a problem.
    """

    nip: str
    method: str  # "token", "certificate", or "unknown" when the entry cannot be read
    source: str
    credential: Credential | None
    problem: KsefCredentialError | None


def load_entry(entry: ContextEntry, credentials_file: Path) -> Credential:
    """The credential an entry describes, reading (and permission-checking) its files."""
    nip = entry.nip
    redaction.register(entry.token)  # from here on no log line carries it
    if entry.method == "token":
        assert entry.token is not None
        mode = credentials_file.stat().st_mode
        if mode & OTHERS_MAY_ACCESS:
            raise KsefCredentialError(
                nip, "permissions", f"the credentials file holds an inline token and is "
                f"accessible by group or others (mode {mode & 0o777:04o}); refused: run "
                f"`chmod 600 {credentials_file}` or move the token to a token_file",
                path=str(credentials_file))
        return TokenCredential(nip, entry.token, source=f"{credentials_file} (inline)")
    if entry.method == "token_file":
        assert entry.token_file is not None
        token = read_token(nip, entry.token_file)
        redaction.register(token)
        return TokenCredential(nip, token, source=str(entry.token_file))
    password = (read_password(nip, entry.password_file)
                if entry.password_file is not None else None)
    redaction.register(password)
    subject_type = entry.subject_identifier_type
    if entry.method == "pkcs12":
        assert entry.pkcs12 is not None
        where = str(entry.pkcs12)
        certificate, key = parse_pkcs12(
            nip, read_file(nip, entry.pkcs12, "PKCS#12", secret=True), password, where)
        return CertificateCredential(nip, certificate, key, subject_type,  # type: ignore[arg-type]
                                     source=where)
    assert entry.certificate is not None and entry.private_key is not None
    certificate = parse_certificate(
        nip, read_file(nip, entry.certificate, "certificate", secret=False),
        str(entry.certificate))
    key = parse_private_key(
        nip, read_file(nip, entry.private_key, "private key", secret=True), password,
        str(entry.private_key))
    return CertificateCredential(nip, certificate, key, subject_type,  # type: ignore[arg-type]
                                 source=str(entry.private_key))


class CredentialStore:
    """Credentials per context; cheap to ask often (a few `stat` calls per `get`)."""

    def __init__(
        self,
        credentials_file: Path | str | None = None,
        tokens_file: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.credentials_file = Path(credentials_file) if credentials_file else None
        self.tokens_file = Path(tokens_file) if tokens_file else None
        # the KSEF_TOKEN_<NIP> variables (pipeline.runtime.settings reads them)
        self._environ = token_variables() if environ is None else environ
        redaction.register(*(v for k, v in self._environ.items()
                             if k.startswith(TOKEN_ENV_PREFIX)))
        self._clock = clock
        self._file_stamp: Stamp | object = object()  # never equal: first use reads
        self._file_error: KsefCredentialError | None = None
        self._entries: dict[str, ContextEntry | KsefCredentialError] = {}
        self._loaded: dict[str, tuple[tuple[Stamp, ...], Credential | KsefCredentialError]] = {}
        self._tokens_stamp: Stamp | object = object()
        self._tokens: dict[str, str] = {}
        self._tokens_error: KsefCredentialError | None = None

    def __repr__(self) -> str:
        return (f"CredentialStore(credentials_file={self.credentials_file}, "
                f"tokens_file={self.tokens_file})")

    # --- the credentials file -----------------------------------------------------------

    def _refresh_file(self) -> None:
        path = self.credentials_file
        if path is None:
            return
        now = stamp(path)
        if now == self._file_stamp:
            return
        self._file_stamp = now
        self._loaded.clear()
        self._entries = {}
        self._file_error = None
        try:
            data = read_file(FILE_CONTEXT, path, "credentials", secret=False)
            self._entries = parse_credentials_file(data, path.parent, str(path))
            redaction.register(*(e.token for e in self._entries.values()
                                 if isinstance(e, ContextEntry)))
        except KsefCredentialError as exc:
            self._file_error = exc

    def _credential(self, entry: ContextEntry) -> Credential | KsefCredentialError:
        assert self.credentials_file is not None
        stamps = (stamp(self.credentials_file), *(stamp(p) for p in entry.files()))
        cached = self._loaded.get(entry.nip)
        if cached is not None and cached[0] == stamps:
            return cached[1]
        try:
            loaded: Credential | KsefCredentialError = load_entry(entry, self.credentials_file)
        except KsefCredentialError as exc:
            loaded = exc
        self._loaded[entry.nip] = (stamps, loaded)
        return loaded

    # --- legacy tokens ---------------------------------------------------------------------

    def _refresh_tokens(self) -> None:
        path = self.tokens_file
        if path is None:
            return
        now = stamp(path)
        if now == self._tokens_stamp:
            return
        self._tokens_stamp = now
        self._tokens, self._tokens_error = {}, None
        try:
            doc = orjson.loads(read_file(FILE_CONTEXT, path, "KSeF tokens", secret=True))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            self._tokens = {str(k): str(v) for k, v in doc.items()}
            redaction.register(*self._tokens.values())
        except KsefCredentialError as exc:
            self._tokens_error = exc
        except ValueError:
            self._tokens_error = KsefCredentialError(
                FILE_CONTEXT, "unreadable", 'expected JSON {"<NIP>": "<KSeF token>"}',
                path=str(path))

    def _legacy_token(self, nip: str) -> TokenCredential | None:
        variable = f"{TOKEN_ENV_PREFIX}{nip}"
        direct = self._environ.get(variable)
        if direct:
            redaction.register(direct)
            return TokenCredential(nip, direct, source=variable)
        self._refresh_tokens()
        if self._tokens_error is not None:
            raise _for(nip, self._tokens_error)
        token = self._tokens.get(nip)
        return None if token is None else TokenCredential(nip, token,
                                                           source=str(self.tokens_file))

    # --- public API ------------------------------------------------------------------------

    def get(self, nip: str) -> Credential | None:
        """`nip`'s credential; None when none is configured.

        Raises KsefCredentialError when one is configured but unusable (missing file,
        unsafe permissions, wrong password...) or the file that would say is unreadable.
        An expired certificate is returned: authentication refuses it with its reason.
        """
        self._refresh_file()
        if self._file_error is not None:
            raise _for(nip, self._file_error)
        entry = self._entries.get(nip)
        if entry is not None:
            if isinstance(entry, KsefCredentialError):
                raise entry
            loaded = self._credential(entry)
            if isinstance(loaded, KsefCredentialError):
                raise loaded
            return loaded
        return self._legacy_token(nip)

    def stamps(self) -> tuple[Stamp, ...]:
        """What the store's files look like now: a change means some context's credential
        may work again (a held context is tried at once, not at its next recheck)."""
        self._refresh_file()
        paths = [p for p in (self.credentials_file, self.tokens_file) if p is not None]
        for entry in self._entries.values():
            if not isinstance(entry, KsefCredentialError):
                paths.extend(entry.files())
        return tuple(stamp(p) for p in paths)

    def nips(self) -> list[str]:
        """Every context configured anywhere (credentials file, environment, tokens file)."""
        self._refresh_file()
        self._refresh_tokens()
        found = set(self._entries) | set(self._tokens)
        found |= {name[len(TOKEN_ENV_PREFIX):] for name in self._environ
                  if name.startswith(TOKEN_ENV_PREFIX)
                  and NIP.fullmatch(name[len(TOKEN_ENV_PREFIX):])}
        return sorted(found)

    def contexts(self) -> list[ContextStatus]:
        """Every context with its credential and problem; never raises for any of them.

        A problem with a whole file is listed under nip "*".
        """
        statuses: list[ContextStatus] = []
        nips = self.nips()
        for broken in (self._file_error, self._tokens_error):
            if broken is not None:
                statuses.append(ContextStatus(FILE_CONTEXT, "unknown", broken.path or "",
                                              None, broken))
        now = self._clock()
        for nip in nips:
            try:
                credential = self.get(nip)
            except KsefCredentialError as exc:
                statuses.append(ContextStatus(nip, "unknown", exc.path or "", None, exc))
                continue
            assert credential is not None
            problem = None
            if isinstance(credential, CertificateCredential):
                info = credential.info
                validity = info.validity_problem(now)
                if validity is not None:
                    when = info.not_after if validity == "expired" else info.not_before
                    problem = KsefCredentialError(
                        nip, validity, f"certificate {info.subject} is {validity} "
                        f"(valid {info.not_before.date()} to {info.not_after.date()}, "
                        f"{when.isoformat()})", path=credential.source or None)
            statuses.append(ContextStatus(nip, credential.kind, credential.source,
                                          credential, problem))
        return statuses


def _for(nip: str, error: KsefCredentialError) -> KsefCredentialError:
    """A whole-file problem, as the error of the context that asked."""
    return KsefCredentialError(nip, error.problem, error.detail, path=error.path)
