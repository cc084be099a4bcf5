"""KSeF certificates of the authenticated subject (`/certificates/*`): enrollment data,
enrollment from a CSR and its status, retrieval and revocation.

A thin layer over the SDK's `AsyncCertificatesClient`, run as one context's
`KsefClient` so limits, retries and typed errors are the same as for invoices. KSeF
serves these only to a certificate (XAdES) login: a KSeF-token login gets 25001/25002.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography import x509
from ksef_client import models as sdk
from ksef_client.clients.certificates import AsyncCertificatesClient

from pipeline.ksef_api.client import KsefClient
from pipeline.ksef_api.errors import KsefApiError, KsefProtocolError
from pipeline.ksef_api.results import required

ENROLLMENT_IN_PROGRESS = 100
ENROLLMENT_DONE = 200
REVOCATION_REASONS = ("Unspecified", "Superseded", "KeyCompromise")


@dataclass(frozen=True)
class EnrollmentStatus:
    code: int
    description: str
    details: tuple[str, ...]
    serial: str | None


@dataclass(frozen=True)
class CertificateLimits:
    can_request: bool
    enrollments_remaining: int
    certificates_remaining: int


class CertificatesApi:
    """`/certificates/*` for the subject `client` authenticates as."""

    def __init__(self, client: KsefClient) -> None:
        self._client = client
        self._api = AsyncCertificatesClient(client.http)

    async def limits(self) -> CertificateLimits:
        """Whether the subject may enroll now (KSeF limits enrollments and active
        certificates per subject)."""
        answer = await self._client.authorized(
            "GET", "/certificates/limits", self._api.get_limits, idempotent=True)
        return CertificateLimits(bool(answer.can_request), int(answer.enrollment.remaining),
                                 int(answer.certificate.remaining))

    async def enrollment_data(self) -> dict[str, object]:
        """The subject attributes the CSR must carry (snake_case, as the SDK names them)."""
        data = await self._client.authorized(
            "GET", "/certificates/enrollments/data", self._api.get_enrollment_data,
            idempotent=True)
        return {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}

    async def enroll(self, name: str, kind: str, csr_b64: str) -> str:
        """Submit the CSR; the enrollment's reference number."""
        body = sdk.EnrollCertificateRequest.from_dict(
            {"certificateName": name, "certificateType": kind, "csr": csr_b64})
        started = await self._client.authorized(
            "POST", "/certificates/enrollments",
            lambda token: self._api.send_enrollment(body, access_token=token),
            idempotent=False)
        return required(started.reference_number, "referenceNumber")

    async def enrollment_status(self, reference: str) -> EnrollmentStatus:
        answer = await self._client.authorized(
            "GET", f"/certificates/enrollments/{reference}",
            lambda token: self._api.get_enrollment_status(reference, access_token=token),
            idempotent=True)
        status = answer.status
        return EnrollmentStatus(int(status.code), str(status.description or ""),
                                tuple(str(d) for d in (status.details or ())),
                                answer.certificate_serial_number or None)

    async def wait_issued(
        self, reference: str, *, timeout: float = 300.0,
        progress: Callable[[EnrollmentStatus, float], None] = lambda status, waited: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> str:
        """Poll until the certificate is issued; its serial number. A refusal or a
        timeout raises KsefApiError with KSeF's code and wording."""
        waited, delay = 0.0, 0.5
        while True:
            status = await self.enrollment_status(reference)
            progress(status, waited)
            if status.code == ENROLLMENT_DONE:
                if status.serial is None:
                    raise KsefProtocolError(f"enrollment {reference}: 200 without a serial")
                return status.serial
            if status.code != ENROLLMENT_IN_PROGRESS:
                raise KsefApiError(200, status.code, status.description, status.details,
                                   operation=f"certificate enrollment {reference}")
            if waited >= timeout:
                raise KsefApiError(200, status.code, f"still in progress after {timeout:.0f} s",
                                   operation=f"certificate enrollment {reference}")
            await sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)

    async def retrieve(self, serial: str) -> x509.Certificate:
        body = sdk.RetrieveCertificatesRequest.from_dict({"certificateSerialNumbers": [serial]})
        answer = await self._client.authorized(
            "POST", "/certificates/retrieve",
            lambda token: self._api.retrieve_certificate(body, access_token=token),
            idempotent=True)
        for item in answer.certificates or ():
            if item.certificate_serial_number == serial:
                der = base64.b64decode(required(item.certificate, "certificate"))
                return x509.load_der_x509_certificate(der)
        raise KsefProtocolError(f"POST /certificates/retrieve: no certificate {serial}")

    async def revoke(self, serial: str, reason: str = "Unspecified") -> None:
        if reason not in REVOCATION_REASONS:
            raise ValueError(f"revocation reason must be one of {REVOCATION_REASONS}")
        body = sdk.RevokeCertificateRequest.from_dict({"revocationReason": reason})
        await self._client.authorized(
            "POST", f"/certificates/{serial}/revoke",
            lambda token: self._api.revoke_certificate(serial, body, access_token=token),
            idempotent=False)
