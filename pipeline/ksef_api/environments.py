"""KSeF environments by name: where the API, Latarnia and the QR host live.

`emulator` is the local stand-in (its URL is given); `test`, `demo` and `prod` are MF's.
Each environment also names the request-limit profile a client should respect: TEST
allows ten times production, DEMO mirrors production (MF's "Limity API" page).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

EMULATOR = "emulator"
TEST = "test"
DEMO = "demo"
PROD = "prod"
NAMES = (EMULATOR, TEST, DEMO, PROD)

_MF = "ksef.mf.gov.pl"
_LATARNIA_TEST = f"https://api-latarnia-test.{_MF}"
_LATARNIA_PROD = f"https://api-latarnia.{_MF}"


@dataclass(frozen=True)
class Environment:
    name: str
    api_url: str  # ends with /v2, no trailing slash
    latarnia_url: str
    qr_url: str | None
    limits_profile: str  # a `pipeline.ksef.limits.PROFILES` name

    @property
    def is_production(self) -> bool:
        return self.name == PROD


_MF_ENVIRONMENTS = {
    TEST: Environment(TEST, f"https://api-test.{_MF}/v2", _LATARNIA_TEST,
                      f"https://qr-test.{_MF}", "test"),
    # MF publishes Latarnia for test and production only; DEMO reports through the test one.
    DEMO: Environment(DEMO, f"https://api-demo.{_MF}/v2", _LATARNIA_TEST,
                      f"https://qr-demo.{_MF}", "production"),
    PROD: Environment(PROD, f"https://api.{_MF}/v2", _LATARNIA_PROD,
                      f"https://qr.{_MF}", "production"),
}


def api_base(url: str) -> str:
    """Normalise an API URL to end in `/v2` (the emulator serves the API there too)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"KSeF API URL must be an absolute http(s) URL, got {url!r}")
    base = url.strip().rstrip("/")
    return base if base.endswith("/v2") else base + "/v2"


def emulator(url: str, *, limits_profile: str = "production") -> Environment:
    """The local emulator at `url` (API under `/v2`, Latarnia under `/latarnia`)."""
    api = api_base(url)
    root = api[: -len("/v2")]
    return Environment(EMULATOR, api, f"{root}/latarnia", None, limits_profile)


def environment(name: str, url: str | None = None) -> Environment:
    """Look an environment up by name; `emulator` needs its `url`."""
    key = name.strip().lower()
    if key == EMULATOR:
        if not url:
            raise ValueError("the emulator environment needs its URL")
        return emulator(url)
    if key in ("production", "prd"):
        key = PROD
    if key in _MF_ENVIRONMENTS:
        if url:
            raise ValueError(f"the {key} environment has a fixed URL; do not pass one")
        return _MF_ENVIRONMENTS[key]
    raise ValueError(f"unknown KSeF environment {name!r}; expected one of {', '.join(NAMES)}")
