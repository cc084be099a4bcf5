"""KSeF environments by name: where the API, Latarnia and the QR host live.

`emulator` is the local stand-in (its URL is given); `test`, `demo` and `prod` are MF's.
Each environment also names the request-limit profile a client should respect: TEST
allows ten times production, DEMO mirrors production (MF's "Limity API" page).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.runtime.settings import SettingsError

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


# --- choosing the environment: explicit, and the same for the API and the QR links -------

ENV_VARIABLE = "KSEF_ENV"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# QR links a billing system prints for invoices sent to each environment. The emulator's
# are TEST links (the emulator has no QR host); never production ones.
QR_FOR = {EMULATOR: TEST, TEST: TEST, DEMO: DEMO, PROD: PROD}
_QR_ALLOWED = {EMULATOR: (TEST, DEMO), TEST: (TEST,), DEMO: (DEMO,), PROD: (PROD,)}
_QR_ALIASES = {"te": TEST, "preprod": DEMO, "prd": PROD, "production": PROD}


class EnvironmentSettingError(SettingsError):
    """KSEF_ENV missing or unknown, a QR environment that disagrees with it, or an API URL
    that would send tokens and invoices unencrypted."""


def canonical(name: str) -> str:
    """`emulator`, `test`, `demo` or `prod` for a name or alias (any case)."""
    key = name.strip().lower()
    key = {"production": PROD, "prd": PROD, "preprod": DEMO, "te": TEST}.get(key, key)
    if key not in NAMES:
        raise EnvironmentSettingError(
            f"unknown {ENV_VARIABLE} {name!r}; set it to one of {', '.join(NAMES)} "
            "(emulator: the local stand-in; test, demo, prod: MF's KSeF)")
    return key


def required_name(value: str | None) -> str:
    """The KSeF environment named by KSEF_ENV's `value`; there is no default, so that a
    worker never talks to the wrong KSeF (or prints the wrong QR links) by omission."""
    if value is None or not value.strip():
        raise EnvironmentSettingError(
            f"{ENV_VARIABLE} is not set: set it to one of {', '.join(NAMES)} (emulator: the "
            "local stand-in; test, demo: MF's test environments; prod: production). The "
            "QR links of sealed invoices follow it.")
    return canonical(value)


def qr_name(env_name: str, explicit: str | None = None) -> str:
    """The QR environment (`test`, `demo`, `prod`) of invoices sent to `env_name`;
    an `explicit` KSEF_QR_ENV must agree with it (prod with prod only)."""
    env_name = canonical(env_name)
    if explicit is None or not explicit.strip():
        return QR_FOR[env_name]
    key = explicit.strip().lower()
    key = _QR_ALIASES.get(key, key)
    if key not in (TEST, DEMO, PROD):
        raise EnvironmentSettingError(
            f"unknown KSEF_QR_ENV {explicit!r}; expected test, demo or prod (or leave it "
            f"unset: it follows {ENV_VARIABLE})")
    if key not in _QR_ALLOWED[env_name]:
        raise EnvironmentSettingError(
            f"KSEF_QR_ENV={explicit} disagrees with {ENV_VARIABLE}={env_name}: invoices sent "
            f"to {env_name} must carry {QR_FOR[env_name]} QR links; unset KSEF_QR_ENV (it "
            f"follows {ENV_VARIABLE}) or set it to {QR_FOR[env_name]}")
    return key


def require_tls(url: str, *, allow_http: bool = False, variable: str = "KSEF_API_URL") -> str:
    """`url`, unless it is plain http to a host other than this machine (tokens and
    invoices would cross the network unencrypted): then EnvironmentSettingError."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme == "http" and host not in LOCAL_HOSTS and not allow_http:
        raise EnvironmentSettingError(
            f"{variable}={url} is plain http to {host or 'an unnamed host'}: KSeF tokens and "
            "invoices would cross the network unencrypted. Use https://, or http only to "
            "127.0.0.1, localhost or ::1 (KSEF_ALLOW_HTTP_API=1 allows it on a private "
            "test network such as the compose stack's)")
    return url
