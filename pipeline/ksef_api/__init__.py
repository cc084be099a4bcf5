"""Async client of the KSeF API v2, one instance per seller context.

This package does I/O (HTTP to KSeF or the emulator) and nothing else: no Kafka, no
Faust. It is the adapter beside the pure domain `pipeline.ksef`, which it uses (crypto,
limits, packages, credentials) and which never imports it. The submit and upo stages
call it; the mode-state stream listens to its health events. `link` builds the clients
per seller context from the settings and the credential store.

What comes from the `ksef-client` SDK (0.20.0) and what is ours, and why:
- SDK: the async API clients (`AsyncAuthClient`, `AsyncSessionsClient`,
  `AsyncSecurityClient`, `AsyncInvoicesClient` over its httpx `AsyncBaseHttpClient`) and
  their typed request/response models for every JSON and XML endpoint. They follow the
  official OpenAPI, map error bodies, keep tokens out of `repr` and wrap transport errors
  - no reason to hand-write that HTTP code.
- Ours, around every SDK call (`transport`): client-side rate limiting before sending
  (`pipeline.ksef.ratelimit` with the documented windows of `pipeline.ksef.limits`),
  Retry-After on 429, bounded backoff on outages for idempotent calls only, typed errors
  (`errors`), and a health event per request (`health`). The SDK has none of these in its
  async client, and its auth coordinator polls without limits and raises bare
  RuntimeError, so the authentication flows and refresh (`auth.TokenAuth`,
  `auth.XadesAuth`) are ours too, still calling the SDK's endpoint methods; the XAdES
  signature itself is the SDK's xmlsec signer (`xades`, reasons in
  docs/certificate-auth.md).
- Ours entirely: part upload (`upload`). The SDK uploads parts held in memory and rejects
  pre-signed URLs on loopback hosts (an SSRF guard), so it cannot serve the emulator and
  would hold 100 MB parts in RAM; we stream each encrypted part file from disk with aiohttp.
  Batch building (archive, split, encrypt) lives in `pipeline.ksef.package`, not here:
  the SDK builds batches in memory.
- Results are our frozen dataclasses (`results`), converted from the SDK's lenient
  models at the edge, with missing required fields raised as `KsefProtocolError`.

Entry points: `KsefClient` (authenticating with a `pipeline.ksef.credentials`
credential), `environment(name, url)`, `BatchSpec`/`PartSpec` (the open body), the
errors, `HealthEvent`/`Outcome`.
"""

from pipeline.ksef_api.auth import MfPublicKey, PublicKeys
from pipeline.ksef_api.bodies import FA3, BatchSpec, FormCode, PartSpec
from pipeline.ksef_api.client import KsefClient, default_limiter
from pipeline.ksef_api.environments import Environment, emulator, environment
from pipeline.ksef_api.errors import (
    AUTH_FAILURE_REASONS,
    AuthFailureReason,
    KsefApiError,
    KsefAuthError,
    KsefCredentialError,
    KsefError,
    KsefProtocolError,
    KsefRateLimited,
    KsefUnavailable,
    PartUploadError,
)
from pipeline.ksef_api.health import HealthEvent, HealthObserver, Outcome
from pipeline.ksef_api.results import (
    BatchSession,
    InvoicePage,
    InvoiceResult,
    OnlineSession,
    PartUpload,
    SentInvoice,
    SessionStatus,
    SessionSummary,
    Upo,
    UpoPage,
)
from pipeline.ksef_api.retry import NO_RETRY, RetryPolicy

__all__ = [
    "AUTH_FAILURE_REASONS",
    "FA3",
    "NO_RETRY",
    "AuthFailureReason",
    "BatchSession",
    "BatchSpec",
    "Environment",
    "FormCode",
    "HealthEvent",
    "HealthObserver",
    "InvoicePage",
    "InvoiceResult",
    "KsefApiError",
    "KsefAuthError",
    "KsefClient",
    "KsefCredentialError",
    "KsefError",
    "KsefProtocolError",
    "KsefRateLimited",
    "KsefUnavailable",
    "MfPublicKey",
    "OnlineSession",
    "Outcome",
    "PartSpec",
    "PartUpload",
    "PartUploadError",
    "PublicKeys",
    "RetryPolicy",
    "SentInvoice",
    "SessionStatus",
    "SessionSummary",
    "Upo",
    "UpoPage",
    "default_limiter",
    "emulator",
    "environment",
]
