"""KSeF API request limits: the documented per-endpoint sliding windows.

Production values come from MF's "Limity API" page (and the `x-rate-limits` of the
OpenAPI); the test environment allows ten times more. Limits apply per context + client IP;
public endpoints (authentication, public keys, test data) only per IP. Part uploads to
pre-signed URLs are not limited, so `classify` never sees them.

A category is a short name such as ``"batch-open"``. The catch-all categories keep one
counter per endpoint, so `classify` returns them as ``"other:POST /tokens"`` or
``"public:POST /auth/challenge"``; `base_category` strips the endpoint and `limit_of`
finds the `Limit` for either form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

SECOND = 1.0
MINUTE = 60.0
HOUR = 3600.0

BATCH_OPEN = "batch-open"
BATCH_CLOSE = "batch-close"
ONLINE_OPEN = "online-open"
ONLINE_INVOICE = "online-invoice"
ONLINE_CLOSE = "online-close"
SESSION_LIST = "session-list"
SESSION_INVOICES = "session-invoices"
SESSION_INVOICES_FAILED = "session-invoices-failed"
SESSION_INVOICE_STATUS = "session-invoice-status"
SESSION_OTHER = "session-other"
INVOICE_BY_NUMBER = "invoice-by-number"
INVOICE_QUERY = "invoice-query"
INVOICE_EXPORT = "invoice-export"
INVOICE_EXPORT_STATUS = "invoice-export-status"
PUBLIC = "public"
OTHER = "other"

PROFILES = ("production", "test", "off")
TEST_FACTOR = 10


@dataclass(frozen=True)
class Limit:
    """Requests allowed per second, minute and hour (None = that window is not capped)."""

    per_second: int | None
    per_minute: int | None = None
    per_hour: int | None = None

    def windows(self) -> tuple[tuple[float, int], ...]:
        """(window length in seconds, allowed requests) for every capped window."""
        spans = ((SECOND, self.per_second), (MINUTE, self.per_minute), (HOUR, self.per_hour))
        return tuple((span, cap) for span, cap in spans if cap is not None)

    def scaled(self, factor: int) -> Limit:
        def mul(cap: int | None) -> int | None:
            return None if cap is None else cap * factor

        return Limit(mul(self.per_second), mul(self.per_minute), mul(self.per_hour))

    def describe(self) -> str:
        caps = (("second", self.per_second), ("minute", self.per_minute),
                ("hour", self.per_hour))
        return ", ".join(f"{cap} per {name}" for name, cap in caps if cap is not None)


LIMITS: dict[str, Limit] = {
    BATCH_OPEN: Limit(10, 20, 60),
    BATCH_CLOSE: Limit(20, 40, 120),  # its own group since the limits page of 2026-09-14
    ONLINE_OPEN: Limit(10, 30, 120),
    ONLINE_INVOICE: Limit(10, 30, 180),
    ONLINE_CLOSE: Limit(20, 60, 240),  # its own group since the limits page of 2026-09-14
    SESSION_LIST: Limit(5, 10, 60),
    SESSION_INVOICES: Limit(10, 20, 200),
    SESSION_INVOICES_FAILED: Limit(10, 20, 200),
    SESSION_INVOICE_STATUS: Limit(30, 120, 1200),
    SESSION_OTHER: Limit(10, 120, 1200),
    INVOICE_BY_NUMBER: Limit(8, 16, 64),
    INVOICE_QUERY: Limit(8, 16, 20),
    INVOICE_EXPORT: Limit(8, 16, 20),
    INVOICE_EXPORT_STATUS: Limit(10, 60, 600),
    PUBLIC: Limit(60),
    OTHER: Limit(10, 30, 120),
}
"""Production limits by category."""


def limits_for(profile: str) -> dict[str, Limit]:
    """Limits of a profile: "production", "test" (10x production) or "off" (no limits)."""
    if profile == "production":
        return dict(LIMITS)
    if profile == "test":
        return {name: limit.scaled(TEST_FACTOR) for name, limit in LIMITS.items()}
    if profile == "off":
        return {}
    raise ValueError(f"unknown limits profile {profile!r}; expected one of {PROFILES}")


def base_category(category: str) -> str:
    """``"other:POST /tokens"`` -> ``"other"``; plain categories are returned unchanged."""
    return category.split(":", 1)[0]


def limit_of(limits: dict[str, Limit], category: str) -> Limit | None:
    """The limit that governs `category` (None = not limited in this profile)."""
    found = limits.get(category)
    return found if found is not None else limits.get(base_category(category))


def is_public(category: str) -> bool:
    """Public endpoints are counted per client IP only (no context before authentication)."""
    return base_category(category) == PUBLIC


_PUBLIC_PREFIXES = ("/auth/challenge", "/auth/ksef-token", "/auth/xades-signature",
                    "/auth/token/", "/security/", "/testdata/subject", "/testdata/person",
                    "/testdata/permissions", "/testdata/attachment", "/peppol/")
_REF = "{ref}"
_SESSION_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), category)
    for method, pattern, category in (
        ("POST", r"/sessions/batch", BATCH_OPEN),
        ("POST", r"/sessions/batch/[^/]+/close", BATCH_CLOSE),
        ("POST", r"/sessions/online", ONLINE_OPEN),
        ("POST", r"/sessions/online/[^/]+/invoices", ONLINE_INVOICE),
        ("POST", r"/sessions/online/[^/]+/close", ONLINE_CLOSE),
        ("GET", r"/sessions", SESSION_LIST),
        ("GET", r"/sessions/[^/]+/invoices", SESSION_INVOICES),
        ("GET", r"/sessions/[^/]+/invoices/failed", SESSION_INVOICES_FAILED),
        ("GET", r"/sessions/[^/]+/invoices/(?!ksef/)[^/]+", SESSION_INVOICE_STATUS),
        ("GET", r"/sessions/.+", SESSION_OTHER),
        ("GET", r"/invoices/ksef/[^/]+", INVOICE_BY_NUMBER),
        ("POST", r"/invoices/query/metadata", INVOICE_QUERY),
        ("POST", r"/invoices/exports", INVOICE_EXPORT),
        ("GET", r"/invoices/exports/[^/]+", INVOICE_EXPORT_STATUS),
    )
)


def api_path(path: str) -> str:
    """Reduce a URL or path to the path below the API base: no host, query or `/v2` prefix."""
    parts = urlsplit(path)
    clean = parts.path.rstrip("/") or "/"
    if clean == "/v2" or clean.startswith("/v2/"):
        clean = clean[3:] or "/"
    return clean


def _template(path: str) -> str:
    """Replace identifier-like segments (any with a digit) so one endpoint is one counter."""
    segments = [_REF if any(c.isdigit() for c in seg) else seg for seg in path.split("/")]
    return "/".join(segments)


def classify(method: str, path: str) -> str:
    """The limit category of a request (`path` may be a full URL and may carry `/v2`)."""
    verb = method.upper()
    clean = api_path(path)
    for route_method, pattern, category in _SESSION_ROUTES:
        if verb == route_method and pattern.fullmatch(clean):
            return category
    return f"{_catch_all(verb, clean)}:{verb} {_template(clean)}"


def _catch_all(verb: str, path: str) -> str:
    if path == "/auth/sessions" or path.startswith("/auth/sessions/"):
        return OTHER
    if verb == "GET" and path.startswith("/auth/") and path.count("/") == 2:
        return PUBLIC  # GET /auth/{referenceNumber}: polling the authentication status
    return PUBLIC if path.startswith(_PUBLIC_PREFIXES) else OTHER
