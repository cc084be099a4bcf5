"""Connection to KSeF (the real API by name, or the emulator) for the stages that talk to it.

One `KsefClient` per seller context, all sharing one rate limiter (KSeF counts per
context + IP) and one cache of MF public keys. Credentials come from files or the
environment, never from code or topics (`pipeline.credentials.CredentialStore`):
- KSEF_CREDENTIALS_FILE: JSON, per context a KSeF token or a certificate + key (see
  `pipeline.credentials.config`), re-read when it or a file it names changes;
- KSEF_TOKEN_<NIP> and KSEF_TOKENS_FILE (`{"<NIP>": "<KSeF token>"}`), as before.
A client's credential is looked up on every `client(nip)`, so a renewed certificate or
token is used from the next call on, without a restart.
"""

from __future__ import annotations

import ssl
from collections.abc import Hashable
from dataclasses import dataclass

from pipeline.credentials import CredentialStore
from pipeline.ksef.ratelimit import SlidingWindowLimiter
from pipeline.ksef_api import (
    Environment,
    HealthObserver,
    KsefClient,
    PublicKeys,
    default_limiter,
    emulator,
    environment,
)
from pipeline.ksef_api.environments import (
    EMULATOR,
    EnvironmentSettingError,
    require_tls,
    required_name,
)
from pipeline.runtime.settings import KsefApiSettings

DEFAULT_EMULATOR_URL = "http://127.0.0.1:8700"


class NoCredentialsError(LookupError):
    """No credential is configured for a seller context (a LookupError, as before; its own
    type so that a stray KeyError is never mistaken for a missing credential)."""


@dataclass(frozen=True)
class KsefSettings:
    env_name: str = "emulator"
    api_url: str | None = DEFAULT_EMULATOR_URL
    tokens_file: str | None = None
    credentials_file: str | None = None
    limits: str | None = None  # emulator only: production | test | off
    time_scale: float = 1.0
    upload_parallelism: int = 4

    @classmethod
    def from_env(cls) -> KsefSettings:
        """From the environment (read by `KsefApiSettings.from_env`); raises as
        `from_api_settings` does."""
        return cls.from_api_settings(KsefApiSettings.from_env())

    @classmethod
    def from_api_settings(cls, given: KsefApiSettings) -> KsefSettings:
        """Raises EnvironmentSettingError (a ValueError) when KSEF_ENV is not set or
        unknown, KSEF_API_URL is given for MF's KSeF, or it is plain http off this host."""
        name = required_name(given.env_name)
        explicit_url = given.api_url
        if explicit_url and name != EMULATOR:
            raise EnvironmentSettingError(
                f"KSEF_API_URL is for the emulator only; KSEF_ENV={name} has MF's fixed URL: "
                "unset KSEF_API_URL (or set KSEF_ENV=emulator)")
        url = explicit_url or (DEFAULT_EMULATOR_URL if name == EMULATOR else None)
        if url:
            require_tls(url, allow_http=given.allow_http_api)
        return cls(
            env_name=name, api_url=url, tokens_file=given.tokens_file,
            credentials_file=given.credentials_file, limits=given.limits,
            time_scale=given.time_scale, upload_parallelism=given.upload_parallelism,
        )

    def environment(self) -> Environment:
        if self.env_name == "emulator":
            assert self.api_url
            return emulator(self.api_url, limits_profile=self.limits or "production")
        return environment(self.env_name)


class KsefClients:
    """Clients per seller context with shared limiter and key cache.

    `store` defaults to the credential files and environment named by `settings`.
    `limiter` is the process's (KSeF counts requests per context and IP, whichever
    stage sends them); without one, these clients get a limiter of their own.
    """

    def __init__(self, settings: KsefSettings, observer: HealthObserver | None = None,
                 store: CredentialStore | None = None,
                 limiter: SlidingWindowLimiter | None = None) -> None:
        self.settings = settings
        self.env = settings.environment()
        self.credentials = store or CredentialStore(settings.credentials_file,
                                                    settings.tokens_file)
        self._limiter = (limiter if limiter is not None
                         else default_limiter(self.env, settings.time_scale))
        self._observer = observer
        self._clients: dict[str, KsefClient] = {}
        self._ssl: ssl.SSLContext | None = None  # one CA bundle for all of them, on first use
        self._public: KsefClient | None = None
        self._public_keys: PublicKeys | None = None

    def client(self, nip: str) -> KsefClient:
        """The authenticated client of `nip`'s context, with its current credential.

        Raises NoCredentialsError (a LookupError) when no credential is configured for `nip`, and
        KsefCredentialError (a KsefError) when one is configured but unusable.
        """
        credential = self.credentials.get(nip)
        if credential is None:
            raise NoCredentialsError(f"no KSeF credentials for seller {nip}: add the context to "
                              f"KSEF_CREDENTIALS_FILE (or a token to KSEF_TOKENS_FILE, or "
                              f"set KSEF_TOKEN_{nip})")
        client = self._clients.get(nip)
        if client is None:
            client = KsefClient(self.env, nip, credential=credential, limiter=self._limiter,
                                observer=self._observer, public_keys=self._public_keys,
                                upload_parallelism=self.settings.upload_parallelism,
                                ssl_context=self._ssl_context())
            if self._public_keys is None:
                self._public_keys = client.public_keys
            self._clients[nip] = client
        else:
            client.use_credential(credential)
        return client

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def public(self) -> KsefClient:
        """A client for public endpoints only (MF public keys)."""
        if self._public is None:
            self._public = KsefClient(self.env, "0000000000", None, limiter=self._limiter,
                                      observer=self._observer, public_keys=self._public_keys,
                                      ssl_context=self._ssl_context())
            if self._public_keys is None:
                self._public_keys = self._public.public_keys
        return self._public

    def headroom(self) -> dict[tuple[Hashable, str], float]:
        """The shared limiter's headroom per (context, category); see `SlidingWindowLimiter`."""
        return self._limiter.headroom()

    async def aclose(self) -> None:
        for client in [*self._clients.values(), *([self._public] if self._public else [])]:
            await client.aclose()
        self._clients.clear()
        self._public = None


class WorkerLimiters:
    """One KSeF request limiter per environment for a whole worker: the pack, submit and
    upo stages each build their `KsefClients`, and KSeF counts their requests together
    (per context and IP), so they must draw from the same windows. Separate limiters let
    the process send up to three times a context's limit and meet 429s, whose blocks
    KSeF lengthens on repeat."""

    def __init__(self) -> None:
        self._limiters: dict[tuple[str, float], SlidingWindowLimiter] = {}

    def get(self, settings: KsefSettings) -> SlidingWindowLimiter:
        env = settings.environment()
        key = (env.limits_profile, settings.time_scale)
        if key not in self._limiters:
            self._limiters[key] = default_limiter(env, settings.time_scale)
        return self._limiters[key]
