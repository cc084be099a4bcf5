"""`KsefClient`: the async KSeF API v2 client of one seller context.

Built on the `ksef-client` SDK's async API clients (httpx) and typed request/response
models for every JSON/XML endpoint; batch part upload is our own (see `upload`). Every
request goes through `Transport` (limits before sending, retries, health events), and
answers come back as this package's frozen dataclasses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ksef_client import models as sdk
from ksef_client.clients.auth import AsyncAuthClient
from ksef_client.clients.invoices import AsyncInvoicesClient
from ksef_client.clients.security import AsyncSecurityClient
from ksef_client.clients.sessions import AsyncSessionsClient
from ksef_client.config import KsefClientOptions
from ksef_client.http import AsyncBaseHttpClient

from pipeline.ksef.crypto import SessionKey, wrap_key
from pipeline.ksef.limits import limits_for
from pipeline.ksef.ratelimit import SlidingWindowLimiter
from pipeline.ksef_api import paging
from pipeline.ksef_api.auth import (
    SYMMETRIC_KEY_ENCRYPTION,
    ChallengeAuth,
    MfPublicKey,
    PublicKeys,
    TokenAuth,
    XadesAuth,
)
from pipeline.ksef_api.bodies import (
    BatchSpec,
    batch_open_request,
    online_open_request,
    send_invoice_request,
)
from pipeline.ksef_api.closing import (
    CLOSE_ATTEMPTS,
    CLOSE_RETRY_FIRST_S,
    CLOSE_RETRY_MAX_S,
    CLOSED,
    REFUSED,
    UNKNOWN_STATE,
    close_failure_kind,
    close_verdict,
)
from pipeline.ksef_api.environments import Environment
from pipeline.ksef_api.errors import (
    KsefApiError,
    KsefAuthError,
    KsefProtocolError,
    KsefUnavailable,
)
from pipeline.ksef_api.health import HealthObserver
from pipeline.ksef_api.results import (
    BatchSession,
    InvoicePage,
    InvoiceResult,
    OnlineSession,
    SentInvoice,
    SessionListPage,
    SessionStatus,
    SessionSummary,
    Upo,
    invoice_result_from,
    parse_api_datetime,
    part_upload_from,
    required,
    session_status_from,
    session_summary_from,
)
from pipeline.ksef_api.retry import RetryPolicy
from pipeline.ksef_api.status_polls import StatusPolls
from pipeline.ksef_api.transport import Transport
from pipeline.ksef_api.upload import PartUploaded, PartUploader

if TYPE_CHECKING:
    from pipeline.ksef.credentials import Credential

T = TypeVar("T")
SESSION_KINDS = ("Batch", "Online")
MAX_PAGE_SIZE = 1000
MIN_PAGE_SIZE = 10


# How much longer than KSeF's every window is on our side: covers uneven network delays
# between two requests (KSeF counts them when they arrive), see SlidingWindowLimiter.
CLIENT_WINDOW_MARGIN_S = 0.25


def default_limiter(env: Environment, time_scale: float = 1.0) -> SlidingWindowLimiter:
    """A limiter with `env`'s documented limits; share one among all contexts of a process."""
    return SlidingWindowLimiter(limits_for(env.limits_profile), time_scale=time_scale,
                                margin_s=CLIENT_WINDOW_MARGIN_S)


class KsefClient:
    """KSeF API v2 for one context (seller NIP). Use as `async with KsefClient(...) as c:`.

    `limiter` should be shared by every client of the process: it keys protected endpoints
    by context and public ones (authentication, keys) by a shared key, as KSeF counts
    them per context + IP and per IP. `public_keys` may be shared by clients that live as
    long as the one whose transport fetches them.

    The context authenticates with `credential` (a KSeF token or a certificate: the
    method follows its `kind`), or with the bare `ksef_token` of older callers; with
    neither, only public endpoints can be called.
    """

    def __init__(
        self,
        env: Environment,
        context_nip: str,
        ksef_token: str | None = None,
        *,
        limiter: SlidingWindowLimiter | None = None,
        policy: RetryPolicy | None = None,
        observer: HealthObserver | None = None,
        public_keys: PublicKeys | None = None,
        timeout: float = 30.0,
        upload_parallelism: int = 4,
        credential: Credential | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.env = env
        self.context_nip = context_nip
        # Without a context given, httpx loads the CA bundle afresh for this client: ~30 ms
        # and ~0.8 MB each, for every seller in every stage. The SDK passes `verify_ssl`
        # to httpx's `verify`, which takes a context as well as a flag.
        verify: Any = ssl_context if ssl_context is not None else True
        self._http = AsyncBaseHttpClient(
            KsefClientOptions(base_url=env.api_url, timeout_seconds=timeout, verify_ssl=verify)
        )
        self._auth_api = AsyncAuthClient(self._http)
        self._sessions = AsyncSessionsClient(self._http)
        self._security = AsyncSecurityClient(self._http)
        self._invoices = AsyncInvoicesClient(self._http)
        self.transport = Transport(
            context_nip,
            limiter=limiter if limiter is not None else default_limiter(env),
            policy=policy,
            observer=observer,
            clock=clock,
            sleep=sleep,
        )
        self.public_keys = public_keys or PublicKeys(self._fetch_certificates)
        self._sleep = sleep
        self.credential: Credential | None = None
        self._auth: ChallengeAuth | None = None
        if credential is not None:
            self.use_credential(credential)
        elif ksef_token is not None:
            self._auth = TokenAuth(context_nip, ksef_token, self._auth_api, self.transport,
                                   self.public_keys, sleep=sleep)
        self._uploader = PartUploader(self.transport, parallelism=upload_parallelism)

    def use_credential(self, credential: Credential) -> None:
        """Authenticate with `credential` from now on (e.g. the credentials file changed).

        The same credential again keeps the current tokens; another one drops them, so the
        next protected call authenticates with it.
        """
        if credential.nip != self.context_nip:
            raise ValueError(f"credential of {credential.nip} given to the client of "
                             f"{self.context_nip}")
        if self._auth is not None and credential == self.credential:
            return
        if credential.kind == "certificate":
            self._auth = XadesAuth(credential, self._auth_api, self.transport,
                                   sleep=self._sleep)
        else:
            self._auth = TokenAuth(self.context_nip, credential.token, self._auth_api,
                                   self.transport, self.public_keys, sleep=self._sleep)
        self.credential = credential

    def __repr__(self) -> str:
        return f"KsefClient(env={self.env.name}, context={self.context_nip})"

    async def __aenter__(self) -> KsefClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            await self._uploader.aclose()
        finally:
            await self._http.aclose()

    # --- plumbing -------------------------------------------------------------------

    async def _fetch_certificates(self) -> list[sdk.PublicKeyCertificate]:
        return list(await self.transport.call(
            "GET", "/security/public-key-certificates",
            self._security.get_public_key_certificates, idempotent=True,
        ))

    def _require_auth(self) -> ChallengeAuth:
        if self._auth is None:
            raise KsefAuthError(401, None, f"no KSeF token or certificate configured for context "
                                f"{self.context_nip}", operation="authentication")
        return self._auth

    async def _authed(
        self, method: str, path: str, op: Callable[[str], Awaitable[T]], *, idempotent: bool
    ) -> T:
        """Call with the context's access token; a 401 refreshes it and tries once more."""
        auth = self._require_auth()
        token = await auth.access_token()
        try:
            return await self.transport.call(method, path, lambda: op(token),
                                             idempotent=idempotent)
        except KsefAuthError as exc:
            if exc.status != 401:
                raise
            auth.invalidate(token)
        fresh = await auth.access_token()
        return await self.transport.call(method, path, lambda: op(fresh), idempotent=idempotent)

    async def authorized(
        self, method: str, path: str, op: Callable[[str], Awaitable[T]], *, idempotent: bool
    ) -> T:
        """`op(access_token)` as this context, through the transport (for API groups kept
        in their own modules, e.g. `certificates`)."""
        return await self._authed(method, path, op, idempotent=idempotent)

    @property
    def http(self) -> AsyncBaseHttpClient:
        """The SDK HTTP client of this context (for SDK API clients built on it)."""
        return self._http

    async def _get(self, path: str, op: Callable[[str], Awaitable[T]]) -> T:
        return await self._authed("GET", path, op, idempotent=True)

    def admission_wait(self, method: str, path: str) -> float:
        """Seconds before our limiter would let `method path` through (0 = now)."""
        return self.transport.admission_wait(method, path)

    # --- authentication and keys ----------------------------------------------------

    async def authenticate(self) -> None:
        """Authenticate now (otherwise it happens on the first protected call)."""
        await self._require_auth().authenticate()

    async def encryption_key(self) -> MfPublicKey:
        """The MF SymmetricKeyEncryption key: wrap session keys with it."""
        return await self.public_keys.get(SYMMETRIC_KEY_ENCRYPTION)

    # --- batch sessions -------------------------------------------------------------

    async def open_batch_session(self, spec: BatchSpec) -> BatchSession:
        """`POST /sessions/batch`. Never retried on an outage: if this raises
        `KsefUnavailable` the session may exist; look before opening another."""
        body = batch_open_request(spec)
        answer = await self._authed(
            "POST", "/sessions/batch",
            lambda token: self._sessions.open_batch_session(body, access_token=token),
            idempotent=False,
        )
        uploads = tuple(sorted((part_upload_from(p) for p in answer.part_upload_requests),
                               key=lambda u: u.ordinal))
        declared = sorted(p.ordinal for p in spec.parts)
        if [u.ordinal for u in uploads] != declared:
            raise KsefProtocolError(
                f"KSeF returned upload requests for parts {[u.ordinal for u in uploads]}, "
                f"{declared} were declared"
            )
        reference = required(answer.reference_number, "batch session referenceNumber")
        return BatchSession(reference, uploads, self.transport.now())

    async def upload_parts(
        self,
        session: BatchSession,
        files: Mapping[int, Path],
        *,
        only: frozenset[int] | None = None,
        sizes: Mapping[int, int] | None = None,
        on_uploaded: PartUploaded | None = None,
    ) -> None:
        """Stream part files (`files[ordinal]`) to their pre-signed URLs in parallel.

        `only` limits the upload to some ordinals (resuming after a crash). Raises
        `PartUploadError` listing failed and uploaded parts.
        """
        uploads = [u for u in session.part_uploads if only is None or u.ordinal in only]
        await self._uploader.upload_all(uploads, files, sizes=sizes, on_uploaded=on_uploaded)

    async def close_batch_session(self, reference: str) -> None:
        """`POST /sessions/batch/{ref}/close`: starts processing. Not retried on outage,
        but safe to call again (see `_close`)."""
        await self._close(reference, lambda token: self._sessions.close_batch_session(
            reference, access_token=token), f"/sessions/batch/{reference}/close")

    async def _close(self, reference: str, op: Callable[[str], Awaitable[object]],
                     path: str) -> None:
        """Close a session; an answer that leaves its state unknown is resolved from the
        session's status, never by a blind second close.

        - 21180 (status forbids): a close whose answer was lost, or a worker killed
          between the close and its journal entry; closed unless the session is still
          open or was cancelled.
        - 5xx, an HTML body, a reset or a timeout: KSeF may have closed it (a resend then
          produced duplicates for integrators); only a session still open is closed again.
        - 21173 (session not found) or 21205 (package empty) right after the upload:
          KSeF has not registered the parts yet; closed again after a pause while open.
        """
        delay = CLOSE_RETRY_FIRST_S
        for attempt in range(CLOSE_ATTEMPTS):
            try:
                await self._authed("POST", path, op, idempotent=False)
                return
            except KsefAuthError:
                raise
            except KsefApiError as exc:
                failure: BaseException = exc
                kind = close_failure_kind(exc.status, exc.code)
            except (KsefUnavailable, KsefProtocolError) as exc:
                failure, kind = exc, UNKNOWN_STATE
            if kind == REFUSED:
                raise failure
            status = await self.session_status(reference)
            verdict = close_verdict(kind, status.code)
            if verdict == CLOSED:
                return
            if verdict == REFUSED or attempt == CLOSE_ATTEMPTS - 1:
                raise failure
            await asyncio.sleep(delay)
            delay = min(delay * 2, CLOSE_RETRY_MAX_S)

    # --- interactive sessions -------------------------------------------------------

    async def open_online_session(self, key: SessionKey | None = None) -> OnlineSession:
        """`POST /sessions/online` with a fresh AES key wrapped under the MF key.

        The returned session holds the key in memory only; a crashed worker opens a new
        session rather than persisting it.
        """
        session_key = key or SessionKey.generate()
        mf_key = await self.encryption_key()
        body = online_open_request(wrap_key(mf_key.key, session_key.key), session_key.iv,
                                   mf_key.public_key_id)
        answer = await self._authed(
            "POST", "/sessions/online",
            lambda token: self._sessions.open_online_session(body, access_token=token),
            idempotent=False,
        )
        return OnlineSession(
            required(answer.reference_number, "online session referenceNumber"),
            parse_api_datetime(answer.valid_until, "online session validUntil"),
            session_key,
        )

    async def send_invoice(
        self,
        session: OnlineSession,
        invoice: bytes,
        *,
        offline_mode: bool = False,
        hash_of_corrected_invoice: str | None = None,
    ) -> SentInvoice:
        """Encrypt and send one invoice. Not retried on outage (KSeF may have it: a resend
        would come back as a 440 duplicate)."""
        body = send_invoice_request(session.key, invoice, offline_mode=offline_mode,
                                    hash_of_corrected_invoice=hash_of_corrected_invoice)
        ref = session.reference_number
        answer = await self._authed(
            "POST", f"/sessions/online/{ref}/invoices",
            lambda token: self._sessions.send_online_invoice(ref, body, access_token=token),
            idempotent=False,
        )
        return SentInvoice(ref, required(answer.reference_number, "invoice referenceNumber"),
                           body.invoice_hash, body.invoice_size)

    async def close_online_session(self, reference: str) -> None:
        await self._close(reference, lambda token: self._sessions.close_online_session(
            reference, access_token=token), f"/sessions/online/{reference}/close")

    # --- status, results, UPO -------------------------------------------------------

    async def session_status(self, reference: str) -> SessionStatus:
        answer = await self._get(
            f"/sessions/{reference}",
            lambda token: self._sessions.get_session_status(reference, access_token=token),
        )
        return session_status_from(reference, answer)

    async def wait_until_processed(
        self,
        reference: str,
        *,
        polls: StatusPolls | None = None,
        timeout: float | None = None,
    ) -> SessionStatus:
        """Poll the session's status (`polls` says how often; the default schedule when
        None) until it is terminal.

        Raises TimeoutError when `timeout` seconds of waiting pass first.
        """
        polls = polls or StatusPolls()
        pause: float | None = None
        waited = 0.0
        while True:
            status = await self.session_status(reference)
            if status.is_terminal:
                return status
            if timeout is not None and waited >= timeout:
                raise TimeoutError(f"session {reference} still has status {status.code} "
                                   f"({status.description}) after {waited:.1f} s")
            pause = polls.next_pause(pause, waited)
            await self._sleep(pause)
            waited += pause

    async def invoice_page(
        self, reference: str, token: str | None = None, *, failed: bool = False,
        page_size: int = MAX_PAGE_SIZE,
    ) -> InvoicePage:
        """One page of `/sessions/{ref}/invoices` (or `/invoices/failed`)."""
        if not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page size must be {MIN_PAGE_SIZE}..{MAX_PAGE_SIZE}")
        api = self._sessions
        fetch = api.get_session_failed_invoices if failed else api.get_session_invoices
        path = f"/sessions/{reference}/invoices" + ("/failed" if failed else "")
        answer = await self._get(
            path,
            lambda access: fetch(reference, page_size=page_size, continuation_token=token,
                                 access_token=access),
        )
        return InvoicePage(tuple(invoice_result_from(m) for m in answer.invoices),
                           answer.continuation_token or None)

    def invoice_pages(
        self, reference: str, *, failed: bool = False, page_size: int = MAX_PAGE_SIZE,
        start: str | None = None,
    ) -> AsyncIterator[InvoicePage]:
        """Every page, following continuation tokens; `start` resumes from a saved token."""
        return paging.pages(
            lambda token: self.invoice_page(reference, token, failed=failed,
                                            page_size=page_size),
            start,
        )

    def session_invoices(
        self, reference: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> AsyncIterator[InvoiceResult]:
        """Every invoice of the session, accepted or not."""
        return paging.items(self.invoice_pages(reference, page_size=page_size),
                            lambda page: page.invoices)

    def failed_session_invoices(
        self, reference: str, *, page_size: int = MAX_PAGE_SIZE
    ) -> AsyncIterator[InvoiceResult]:
        """Only the invoices KSeF rejected."""
        return paging.items(self.invoice_pages(reference, failed=True, page_size=page_size),
                            lambda page: page.invoices)

    async def session_list_page(
        self,
        kind: str = "Batch",
        token: str | None = None,
        *,
        created_from: dt.datetime | None = None,
        statuses: Sequence[str] = (),
        page_size: int = 100,
    ) -> SessionListPage:
        """One page of `GET /sessions` (`kind` "Batch" or "Online"; `statuses` among
        InProgress, Succeeded, Failed, Cancelled). Tightly limited: 10 a minute, 60 an hour."""
        if kind not in SESSION_KINDS:
            raise ValueError(f"session kind must be one of {SESSION_KINDS}, got {kind!r}")
        since = None if created_from is None else created_from.astimezone(dt.UTC).isoformat()
        answer = await self._get(
            "/sessions",
            lambda access: self._sessions.get_sessions(
                session_type=kind, page_size=page_size, continuation_token=token,
                date_created_from=since, statuses=list(statuses) or None,
                access_token=access),
        )
        return SessionListPage(tuple(session_summary_from(m) for m in answer.sessions),
                               answer.continuation_token or None)

    def list_sessions(
        self,
        kind: str = "Batch",
        *,
        created_from: dt.datetime | None = None,
        statuses: Sequence[str] = (),
        page_size: int = 100,
    ) -> AsyncIterator[SessionSummary]:
        """Sessions of this context, e.g. to find one whose open answer was lost."""
        return paging.items(
            paging.pages(lambda token: self.session_list_page(
                kind, token, created_from=created_from, statuses=statuses,
                page_size=page_size)),
            lambda page: page.sessions,
        )

    async def invoice_status(self, reference: str, invoice_reference: str) -> InvoiceResult:
        answer = await self._get(
            f"/sessions/{reference}/invoices/{invoice_reference}",
            lambda token: self._sessions.get_session_invoice_status(
                reference, invoice_reference, access_token=token),
        )
        return invoice_result_from(answer)

    async def session_upo(self, reference: str, upo_reference: str) -> Upo:
        """One page of the session's collective UPO (XML, up to 10,000 invoices)."""
        content = await self._get(
            f"/sessions/{reference}/upo/{upo_reference}",
            lambda token: self._sessions.get_session_upo(reference, upo_reference,
                                                         access_token=token),
        )
        if not content:
            raise KsefProtocolError(f"UPO {upo_reference} of session {reference} is empty")
        return Upo(reference, upo_reference, content)

    async def session_upos(self, status: SessionStatus) -> tuple[Upo, ...]:
        """Every UPO page a closed session's status lists, in order."""
        return tuple([await self.session_upo(status.reference_number, page.reference_number)
                      for page in status.upo_pages])

    async def invoice_upo(
        self, reference: str, *, ksef_number: str | None = None,
        invoice_reference: str | None = None,
    ) -> bytes:
        """The UPO of one accepted invoice, by KSeF number or by invoice reference."""
        if (ksef_number is None) == (invoice_reference is None):
            raise ValueError("give exactly one of ksef_number and invoice_reference")
        if ksef_number is not None:
            number = ksef_number
            return await self._get(
                f"/sessions/{reference}/invoices/ksef/{number}/upo",
                lambda token: self._sessions.get_session_invoice_upo_by_ksef(
                    reference, number, access_token=token),
            )
        inv = required(invoice_reference, "invoice reference")
        return await self._get(
            f"/sessions/{reference}/invoices/{inv}/upo",
            lambda token: self._sessions.get_session_invoice_upo_by_ref(
                reference, inv, access_token=token),
        )

    async def invoice_xml(self, ksef_number: str) -> bytes:
        """`GET /invoices/ksef/{n}`: the invoice as KSeF stores it."""
        answer = await self._get(
            f"/invoices/ksef/{ksef_number}",
            lambda token: self._invoices.get_invoice_bytes(ksef_number, access_token=token),
        )
        return answer.content
