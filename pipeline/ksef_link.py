"""Connection to KSeF (the real API by name, or the emulator) for the stages that talk to it.

One `KsefClient` per seller context, all sharing one rate limiter (KSeF counts per
context + IP) and one cache of MF public keys. KSeF tokens come from a secrets file or
the environment, never from code or topics:
- KSEF_TOKENS_FILE: JSON `{"<NIP>": "<KSeF token>", ...}` (re-read when it changes), or
- KSEF_TOKEN_<NIP>: one variable per context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from pipeline.ksef.api import (
    Environment,
    HealthObserver,
    KsefClient,
    PublicKeys,
    default_limiter,
    emulator,
    environment,
)

DEFAULT_EMULATOR_URL = "http://127.0.0.1:8700"


@dataclass(frozen=True)
class KsefSettings:
    env_name: str = "emulator"
    api_url: str | None = DEFAULT_EMULATOR_URL
    tokens_file: str | None = None
    limits: str | None = None  # emulator only: production | test | off
    time_scale: float = 1.0
    upload_parallelism: int = 4

    @classmethod
    def from_env(cls) -> KsefSettings:
        name = os.environ.get("KSEF_ENV", "emulator")
        url = os.environ.get("KSEF_API_URL") or (DEFAULT_EMULATOR_URL if name == "emulator"
                                                 else None)
        return cls(
            env_name=name, api_url=url, tokens_file=os.environ.get("KSEF_TOKENS_FILE"),
            limits=os.environ.get("KSEF_LIMITS"),
            time_scale=float(os.environ.get("KSEF_LIMITS_TIME_SCALE", "1")),
            upload_parallelism=int(os.environ.get("KSEF_UPLOAD_PARALLELISM", "4")),
        )

    def environment(self) -> Environment:
        if self.env_name == "emulator":
            assert self.api_url
            return emulator(self.api_url, limits_profile=self.limits or "production")
        return environment(self.env_name)


class KsefClients:
    """Clients per seller context with shared limiter and key cache."""

    def __init__(self, settings: KsefSettings, observer: HealthObserver | None = None) -> None:
        self.settings = settings
        self.env = settings.environment()
        self._limiter = default_limiter(self.env, settings.time_scale)
        self._observer = observer
        self._clients: dict[str, KsefClient] = {}
        self._public: KsefClient | None = None
        self._public_keys: PublicKeys | None = None
        self._tokens: dict[str, str] = {}
        self._tokens_mtime = 0.0

    def _token(self, nip: str) -> str | None:
        direct = os.environ.get(f"KSEF_TOKEN_{nip}")
        if direct:
            return direct
        path = self.settings.tokens_file
        if path:
            mtime = Path(path).stat().st_mtime
            if mtime != self._tokens_mtime:
                self._tokens = {str(k): str(v) for k, v in
                                orjson.loads(Path(path).read_bytes()).items()}
                self._tokens_mtime = mtime
        return self._tokens.get(nip)

    def client(self, nip: str) -> KsefClient:
        """The authenticated client of `nip`'s context (raises if no token is configured)."""
        client = self._clients.get(nip)
        if client is None:
            token = self._token(nip)
            if token is None:
                raise LookupError(f"no KSeF token for seller {nip}: add it to KSEF_TOKENS_FILE "
                                  f"or set KSEF_TOKEN_{nip}")
            client = KsefClient(self.env, nip, token, limiter=self._limiter,
                                observer=self._observer, public_keys=self._public_keys,
                                upload_parallelism=self.settings.upload_parallelism)
            if self._public_keys is None:
                self._public_keys = client.public_keys
            self._clients[nip] = client
        return client

    def public(self) -> KsefClient:
        """A client for public endpoints only (MF public keys)."""
        if self._public is None:
            self._public = KsefClient(self.env, "0000000000", None, limiter=self._limiter,
                                      observer=self._observer, public_keys=self._public_keys)
            if self._public_keys is None:
                self._public_keys = self._public.public_keys
        return self._public

    async def aclose(self) -> None:
        for client in [*self._clients.values(), *([self._public] if self._public else [])]:
            await client.aclose()
        self._clients.clear()
        self._public = None
