"""Read KSeF's error bodies (all documented shapes) into one code/description/details triple.

KSeF answers errors as the legacy `ExceptionResponse` (`exception.exceptionDetailList`),
as RFC 7807 problem details (`title`/`detail`, with `errors[]` on 400), or, for 429, as
`{"status": {code, description, details}}`. The first listed error gives the code; the
rest are kept in `details` so nothing KSeF said is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ApiProblem:
    code: int | None
    description: str
    details: tuple[str, ...] = ()


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(item) for item in value if item is not None)
    if isinstance(value, str) and value:
        return (value,)
    return ()


def _from_entries(
    entries: list[Any], code_key: str, text_key: str, fallback: str
) -> ApiProblem | None:
    items = [e for e in entries if isinstance(e, dict)]
    if not items:
        return None
    first = items[0]
    details = list(_strings(first.get("details")))
    for other in items[1:]:
        other_code = _int_or_none(other.get(code_key))
        prefix = f"[{other_code}] " if other_code is not None else ""
        details.append(f"{prefix}{other.get(text_key) or ''}".strip())
        details.extend(_strings(other.get("details")))
    description = str(first.get(text_key) or fallback)
    return ApiProblem(_int_or_none(first.get(code_key)), description, tuple(details))


def parse_problem(http_status: int, body: Any, reason: str = "") -> ApiProblem:
    """Best reading of an error response body (`body` is parsed JSON, text or None)."""
    fallback = reason or f"HTTP {http_status}"
    if isinstance(body, dict):
        exception = body.get("exception")
        if isinstance(exception, dict):
            found = _from_entries(
                exception.get("exceptionDetailList") or [],
                "exceptionCode",
                "exceptionDescription",
                fallback,
            )
            if found is not None:
                return found
        errors = body.get("errors")
        if isinstance(errors, list):
            found = _from_entries(errors, "code", "description", fallback)
            if found is not None:
                extra = _strings(body.get("detail"))
                return ApiProblem(found.code, found.description, found.details + extra)
        status = body.get("status")
        if isinstance(status, dict):
            return ApiProblem(
                _int_or_none(status.get("code")),
                str(status.get("description") or fallback),
                _strings(status.get("details")),
            )
        if "detail" in body or "title" in body:
            reason_code = body.get("reasonCode")
            details = (f"reasonCode {reason_code}",) if reason_code else ()
            text = body.get("detail") or body.get("title") or fallback
            return ApiProblem(None, str(text), details)
    if isinstance(body, str) and body.strip():
        return ApiProblem(None, fallback, (body.strip()[:500],))
    return ApiProblem(None, fallback)
