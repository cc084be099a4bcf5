"""API errors in KSeF's documented shapes.

400 answers carry KSeF's exception codes (e.g. 21405 input validation, 21173 unknown
session) in `ExceptionResponse`, or in `BadRequestProblemDetails` when the client sends
`X-Error-Format: problem-details`; 401/403/410 are always problem details; 429 carries
`Retry-After`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from pipeline.emulator.timefmt import iso, utcnow

PROBLEM_JSON = "application/problem+json"

# KSeF exception codes used by the emulator
UNREADABLE = 21001
INVALID_CHALLENGE = 21111
INVALID_CERTIFICATE = 21115
INVALID_SUBJECT = 21117
INVOICE_LIMIT = 21155
PART_SIZE = 21157
TOO_MANY_PARTS = 21161
INVOICE_NOT_FOUND = 21164
CORRECTION_UNAVAILABLE = 21166
CORRECTION_NOT_ALLOWED = 21167
SESSION_NOT_FOUND = 21173
UPO_NOT_FOUND = 21178
SESSION_STATUS = 21180
EMPTY_PACKAGE = 21205
UPLOAD_TIMEOUT = 21208
NOT_AUTHORIZED = 21301
NOT_AUTHENTICATED = 21304
NOT_SCHEMA_VALID = 21401
FILE_SIZE = 21402
FILE_HASH = 21403
VALIDATION = 21405
CONTINUATION_TOKEN = 21418
UNKNOWN_KEY = 21470
SUBJECT_EXISTS = 30001
BAD_DOCUMENT = 9101
NO_SIGNATURE = 9102
TOO_MANY_SIGNATURES = 9103
INVALID_SIGNATURE = 9105
NO_ENROLLMENT_DATA = 25001
NO_ENROLLMENT = 25002
CSR_DATA_MISMATCH = 25003
BAD_CSR = 25004
ENROLLMENT_NOT_FOUND = 25005
ENROLLMENT_LIMIT = 25006
CERTIFICATE_LIMIT = 25007
CERTIFICATE_NOT_FOUND = 25008
NOT_REVOCABLE = 25009
BAD_KEY = 25010
BAD_CSR_ALGORITHM = 25011

DESCRIPTIONS = {
    UNREADABLE: "Nieczytelna treść.",
    INVALID_CERTIFICATE: "Nieprawidłowy certyfikat.",
    INVALID_SUBJECT: "Nieprawidłowy identyfikator podmiotu dla wskazanego typu kontekstu.",
    NOT_SCHEMA_VALID: "Dokument nie jest zgodny ze schemą (xsd).",
    BAD_DOCUMENT: "Nieprawidłowy dokument.",
    NO_SIGNATURE: "Brak podpisu.",
    TOO_MANY_SIGNATURES: "Przekroczona liczba dozwolonych podpisów.",
    INVALID_SIGNATURE: "Nieprawidłowy podpis.",
    NO_ENROLLMENT_DATA: "Brak możliwości pobrania danych do CSR dla wykorzystanego sposobu "
                        "uwierzytelnienia.",
    NO_ENROLLMENT: "Brak możliwości złożenia wniosku certyfikacyjnego dla wykorzystanego "
                   "sposobu uwierzytelnienia.",
    CSR_DATA_MISMATCH: "Dane w CSR nie zgadzają się z danymi w użytym wektorze "
                       "uwierzytelniającym.",
    BAD_CSR: "Niepoprawny format CSR lub niepoprawny podpis CSR.",
    ENROLLMENT_NOT_FOUND: "Wniosek certyfikacyjny o podanym numerze referencyjnym nie istnieje.",
    ENROLLMENT_LIMIT: "Osiągnięto limit możliwych do złożenia wniosków certyfikacyjnych.",
    CERTIFICATE_LIMIT: "Osiągnięto limit dopuszczalnej liczby posiadanych certyfikatów.",
    CERTIFICATE_NOT_FOUND: "Certyfikat o podanym numerze seryjnym nie istnieje.",
    NOT_REVOCABLE: "Nie można odwołać wskazanego certyfikatu, ponieważ jest już odwołany, "
                   "zablokowany lub nieważny.",
    BAD_KEY: "Nieprawidłowy typ lub długość klucza.",
    BAD_CSR_ALGORITHM: "Nieprawidłowy algorytm podpisu CSR.",
    INVALID_CHALLENGE: "Nieprawidłowe wyzwanie autoryzacyjne.",
    INVOICE_LIMIT: "Przekroczono dozwoloną liczbę faktur w sesji.",
    PART_SIZE: "Nieprawidłowy rozmiar części pakietu.",
    TOO_MANY_PARTS: "Przekroczono dozwoloną liczbę części pakietu.",
    INVOICE_NOT_FOUND: "Faktura o podanym identyfikatorze nie istnieje.",
    CORRECTION_UNAVAILABLE: "Korekta techniczna niedostępna.",
    CORRECTION_NOT_ALLOWED: "Status faktury nie pozwala na korektę techniczną.",
    SESSION_NOT_FOUND: "Brak sesji o wskazanym numerze referencyjnym.",
    UPO_NOT_FOUND: "Nie znaleziono UPO dla podanych kryteriów.",
    SESSION_STATUS: "Status sesji nie pozwala na wykonanie operacji.",
    EMPTY_PACKAGE: "Pakiet nie może być pusty.",
    UPLOAD_TIMEOUT: "Czas oczekiwania na requesty upload lub finish został przekroczony.",
    NOT_AUTHORIZED: "Brak autoryzacji.",
    NOT_AUTHENTICATED: "Brak uwierzytelnienia.",
    FILE_SIZE: "Nieprawidłowy rozmiar pliku.",
    FILE_HASH: "Nieprawidłowy skrót pliku.",
    VALIDATION: "Błąd walidacji danych wejściowych.",
    CONTINUATION_TOKEN: "Przekazany token kontynuacji ma nieprawidłowy format.",
    UNKNOWN_KEY: "Przesłany identyfikator klucza jest nieznany lub wskazuje na wycofany klucz.",
    SUBJECT_EXISTS: "Podmiot lub uprawnienie już istnieje.",
}

_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           410: "Gone", 413: "Payload Too Large", 429: "Too Many Requests",
           503: "Service Unavailable"}


class ApiError(Exception):
    """An error answer; `code` is KSeF's exception code for 400s."""

    def __init__(self, http_status: int, code: int, details: Sequence[str] = (),
                 *, detail: str | None = None, reason_code: str | None = None) -> None:
        self.http_status = http_status
        self.code = code
        self.details = list(details)
        self.detail = detail or (self.details[0] if self.details else _TITLES.get(
            http_status, "Error"))
        self.reason_code = reason_code
        super().__init__(f"{http_status} {code}: {self.detail}")


def bad_request(code: int, *details: str) -> ApiError:
    return ApiError(400, code, details)


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, 0, detail=detail)


def forbidden(detail: str, reason_code: str = "missing-permissions") -> ApiError:
    return ApiError(403, 0, detail=detail, reason_code=reason_code)


def trace_id() -> str:
    return secrets.token_hex(16)


def _problem(status: int, detail: str, instance: str, **extra: Any) -> dict[str, Any]:
    return {"title": _TITLES.get(status, "Error"), "status": status, "instance": instance,
            "detail": detail, **extra, "timestamp": iso(utcnow()), "traceId": trace_id()}


def wants_problem_details(request: web.Request) -> bool:
    return request.headers.get("X-Error-Format", "").lower() == "problem-details"


def render(request: web.Request, error: ApiError) -> web.Response:
    status = error.http_status
    if status == 400 and not wants_problem_details(request):
        body: dict[str, Any] = {"exception": {
            "exceptionDetailList": [{
                "exceptionCode": error.code,
                "exceptionDescription": DESCRIPTIONS.get(error.code, "Błąd."),
                "details": error.details or None,
            }],
            "serviceCode": trace_id(),
            "serviceCtx": "srvEMU",
            "serviceName": "ksef-emulator",
            "timestamp": iso(utcnow()),
        }}
        return web.json_response(body, status=400)
    if status == 400:
        errors = [{"code": error.code, "description": DESCRIPTIONS.get(error.code, "Błąd."),
                   "details": error.details or None}]
        body = _problem(400, "Żądanie jest nieprawidłowe.", request.path, errors=errors)
    elif status == 403:
        body = _problem(403, error.detail, request.path,
                        reasonCode=error.reason_code or "forbidden")
    else:
        body = _problem(status, error.detail, request.path)
    return web.json_response(body, status=status, content_type=PROBLEM_JSON)


def too_many_requests(request: web.Request, retry_after: float, message: str) -> web.Response:
    seconds = max(1, math.ceil(retry_after))
    headers = {"Retry-After": str(seconds)}
    if wants_problem_details(request):
        body: dict[str, Any] = _problem(429, message, request.path)
        return web.json_response(body, status=429, headers=headers, content_type=PROBLEM_JSON)
    body = {"status": {"code": 429, "description": "Too Many Requests", "details": [message]}}
    return web.json_response(body, status=429, headers=headers)


def service_unavailable(request: web.Request) -> web.Response:
    body = _problem(503, "KSeF jest niedostępny (emulowana awaria).", request.path)
    return web.json_response(body, status=503, content_type=PROBLEM_JSON,
                             headers={"Retry-After": "5"})
