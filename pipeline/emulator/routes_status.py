"""Session and invoice status, UPO downloads and invoice retrieval."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from pipeline.emulator import statuses, upo_render
from pipeline.emulator.errors import INVOICE_NOT_FOUND, UPO_NOT_FOUND, VALIDATION, bad_request
from pipeline.emulator.request_helpers import (
    continuation_offset,
    continuation_token,
    emulator,
    page_size,
    require_context,
)
from pipeline.emulator.routes_online import own_session
from pipeline.emulator.state import Emulator
from pipeline.emulator.store import Row
from pipeline.emulator.timefmt import iso, parse, utcnow
from pipeline.ksef.numbers import sha256_b64

DOWNLOAD_MINUTES = 60
XML = "application/xml"


def _status(row: Row) -> dict[str, Any]:
    status: dict[str, Any] = {"code": row["status_code"],
                              "description": row["status_description"]}
    if row.get("status_details"):
        status["details"] = json.loads(row["status_details"])
    if row.get("extensions"):
        status["extensions"] = json.loads(row["extensions"])
    return status


def _expiry() -> tuple[int, str]:
    until = utcnow() + dt.timedelta(minutes=DOWNLOAD_MINUTES)
    return int(until.timestamp()), iso(until)


def _signed(emu: Emulator, kind: str, session: str, item: str) -> tuple[str, str]:
    expires, until = _expiry()
    sig = emu.sign(kind, session, item, str(expires))
    return f"{emu.base_url}/_blob/{kind}/{session}/{item}?expires={expires}&sig={sig}", until


def session_json(emu: Emulator, row: Row) -> dict[str, Any]:
    total, accepted, failed = emu.store.invoice_counts(row["reference"])
    body: dict[str, Any] = {"status": _status(row), "dateCreated": row["created"],
                            "dateUpdated": row["updated"],
                            "invoiceCount": max(total, row["invoice_count"]),
                            "successfulInvoiceCount": accepted, "failedInvoiceCount": failed}
    if row["valid_until"]:
        body["validUntil"] = row["valid_until"]
    pages = emu.store.upo_pages(row["reference"]) if row["status_code"] == 200 else []
    if pages:
        entries = []
        for page in pages:
            url, until = _signed(emu, "upo", row["reference"], page["reference"])
            entries.append({"referenceNumber": page["reference"], "downloadUrl": url,
                            "downloadUrlExpirationDate": until})
        body["upo"] = {"pages": entries}
    return body


def invoice_json(emu: Emulator, row: Row) -> dict[str, Any]:
    body: dict[str, Any] = {"ordinalNumber": row["ordinal"], "referenceNumber": row["reference"],
                            "invoiceHash": row["invoice_hash"],
                            "invoicingDate": row["invoicing_date"], "status": _status(row)}
    optional = {"invoiceNumber": row["invoice_number"], "ksefNumber": row["ksef_number"],
                "invoiceFileName": row["file_name"], "acquisitionDate": row["acquisition_date"],
                "permanentStorageDate": row["storage_date"],
                "invoicingMode": row["invoicing_mode"]}
    body.update({k: v for k, v in optional.items() if v is not None})
    if row["status_code"] == 200:
        url, until = _signed(emu, "invoice-upo", row["session"], row["reference"])
        body["upoDownloadUrl"] = url
        body["upoDownloadUrlExpirationDate"] = until
    return body


_COMMON = {"InProgress": statuses.IN_PROGRESS, "Succeeded": (statuses.SUCCEEDED,),
           "Cancelled": (statuses.CANCELLED,)}


def _session_filters(request: web.Request, nip: str) -> tuple[str, list[Any]]:
    where, args = ["nip = ?"], [nip]
    kind = request.query.get("sessionType")
    if kind is not None:
        if kind not in (statuses.ONLINE, statuses.BATCH):
            raise bad_request(VALIDATION, "sessionType must be Online or Batch")
        where.append("kind = ?")
        args.append(kind)
    if "referenceNumber" in request.query:
        where.append("reference = ?")
        args.append(request.query["referenceNumber"])
    for param, column, op in (("dateCreatedFrom", "created", ">="),
                              ("dateCreatedTo", "created", "<="),
                              ("dateClosedFrom", "closed", ">="), ("dateClosedTo", "closed", "<="),
                              ("dateModifiedFrom", "updated", ">="),
                              ("dateModifiedTo", "updated", "<=")):
        if param in request.query:
            try:
                moment = iso(parse(request.query[param]))
            except ValueError as exc:
                raise bad_request(VALIDATION, f"{param} is not an ISO 8601 date-time") from exc
            where.append(f"{column} {op} ?")
            args.append(moment)
    wanted = request.query.getall("statuses", [])
    if wanted:
        clauses = []
        for name in wanted:
            if name == "Failed":
                known = [c for codes in _COMMON.values() for c in codes]
                clauses.append(f"status_code NOT IN ({', '.join(map(str, known))})")
            elif name in _COMMON:
                clauses.append(f"status_code IN ({', '.join(map(str, _COMMON[name]))})")
            else:
                raise bad_request(VALIDATION, f"unknown session status filter {name!r}")
        where.append("(" + " OR ".join(clauses) + ")")
    return " AND ".join(where), args


async def list_sessions(request: web.Request) -> web.Response:
    emu = emulator(request)
    context = require_context(request)
    size = page_size(request)
    offset = continuation_offset(request)
    where, args = _session_filters(request, context.nip)
    rows = emu.store.query_sessions(where, args, offset, size + 1)
    items = []
    for row in rows[:size]:
        detail = session_json(emu, row)
        item = {"referenceNumber": row["reference"], "status": detail["status"],
                "dateCreated": row["created"], "dateUpdated": row["updated"],
                "totalInvoiceCount": detail["invoiceCount"],
                "successfulInvoiceCount": detail["successfulInvoiceCount"],
                "failedInvoiceCount": detail["failedInvoiceCount"]}
        if row["valid_until"]:
            item["validUntil"] = row["valid_until"]
        items.append(item)
    body: dict[str, Any] = {"sessions": items}
    if len(rows) > size:
        body["continuationToken"] = continuation_token(offset + size)
    return web.json_response(body)


async def session_status(request: web.Request) -> web.Response:
    emu = emulator(request)
    context = require_context(request)
    row = own_session(emu, context, request.match_info["referenceNumber"])
    return web.json_response(session_json(emu, row))


async def _invoices(request: web.Request, failed_only: bool) -> web.Response:
    emu = emulator(request)
    context = require_context(request)
    session = own_session(emu, context, request.match_info["referenceNumber"])
    size = page_size(request)
    offset = continuation_offset(request)
    rows = emu.store.invoices_page(session["reference"], failed_only, offset, size + 1)
    body: dict[str, Any] = {"invoices": [invoice_json(emu, r) for r in rows[:size]]}
    if len(rows) > size:
        body["continuationToken"] = continuation_token(offset + size)
    return web.json_response(body)


async def session_invoices(request: web.Request) -> web.Response:
    return await _invoices(request, failed_only=False)


async def failed_invoices(request: web.Request) -> web.Response:
    return await _invoices(request, failed_only=True)


def _session_invoice(request: web.Request) -> tuple[Emulator, Row, Row]:
    emu = emulator(request)
    context = require_context(request)
    session = own_session(emu, context, request.match_info["referenceNumber"])
    reference = request.match_info["invoiceReferenceNumber"]
    row = emu.store.invoice_in_session(session["reference"], reference)
    if row is None:
        raise bad_request(VALIDATION, f"Faktura o numerze referencyjnym {reference} nie "
                          f"istnieje w sesji {session['reference']}.")
    return emu, session, row


async def invoice_status(request: web.Request) -> web.Response:
    emu, _, row = _session_invoice(request)
    return web.json_response(invoice_json(emu, row))


def _xml(body: bytes, sha: str | None = None) -> web.Response:
    return web.Response(body=body, content_type=XML, charset="utf-8",
                        headers={"x-ms-meta-hash": sha or sha256_b64(body)})


def _invoice_upo(emu: Emulator, session: Row, row: Row | None, what: str) -> web.Response:
    if row is None or row["status_code"] != 200:
        raise bad_request(UPO_NOT_FOUND, f"UPO dla {what} i numeru referencyjnego sesji "
                          f"{session['reference']} nie zostało znalezione.")
    return _xml(upo_render.render(session, [row]))


async def invoice_upo(request: web.Request) -> web.Response:
    emu, session, row = _session_invoice(request)
    return _invoice_upo(emu, session, row, f"faktury {row['reference']}")


async def invoice_upo_by_ksef(request: web.Request) -> web.Response:
    emu = emulator(request)
    context = require_context(request)
    session = own_session(emu, context, request.match_info["referenceNumber"])
    number = request.match_info["ksefNumber"]
    row = emu.store.invoice_by_ksef(number)
    if row is not None and row["session"] != session["reference"]:
        row = None
    return _invoice_upo(emu, session, row, f"numeru KSeF {number}")


def _page_response(emu: Emulator, session: str, upo_ref: str) -> web.Response:
    page = emu.store.upo_page(session, upo_ref)
    if page is None:
        raise bad_request(UPO_NOT_FOUND, f"UPO o numerze referencyjnym {upo_ref} dla sesji "
                          f"{session} nie zostało znalezione.")
    return _xml(Path(page["path"]).read_bytes(), page["sha256"])


async def session_upo(request: web.Request) -> web.Response:
    emu = emulator(request)
    context = require_context(request)
    session = own_session(emu, context, request.match_info["referenceNumber"])
    return _page_response(emu, session["reference"], request.match_info["upoReferenceNumber"])


async def invoice_by_number(request: web.Request) -> web.Response:
    emu = emulator(request)
    context = require_context(request)
    number = request.match_info["ksefNumber"]
    row = emu.store.invoice_by_ksef(number)
    content = emu.invoice_content(row) if row is not None else None
    if row is None or content is None or context.nip not in (row["seller_nip"],
                                                             row["buyer_nip"]):
        raise bad_request(INVOICE_NOT_FOUND, f"Faktura o numerze KSeF {number} nie została "
                          "znaleziona.")
    return _xml(content, row["invoice_hash"])


async def blob(request: web.Request) -> web.Response:
    """Pre-signed downloads (no bearer token), as `downloadUrl`/`upoDownloadUrl` promise."""
    emu = emulator(request)
    kind, session, item = (request.match_info[k] for k in ("kind", "session", "item"))
    expires = request.query.get("expires", "")
    if not emu.signature_ok(request.query.get("sig", ""), kind, session, item, expires) or (
            not expires.isdigit() or time.time() > int(expires)):
        return web.Response(status=403, text="invalid or expired link")
    if kind == "upo":
        return _page_response(emu, session, item)
    row = emu.store.invoice_in_session(session, item)
    session_row = emu.store.session(session)
    if session_row is None:
        return web.Response(status=404)
    return _invoice_upo(emu, session_row, row, f"faktury {item}")


def routes() -> list[web.RouteDef]:
    sessions = "/v2/sessions/{referenceNumber}"
    return [
        web.get("/v2/sessions", list_sessions),
        web.get(sessions, session_status),
        web.get(sessions + "/invoices", session_invoices),
        web.get(sessions + "/invoices/failed", failed_invoices),
        web.get(sessions + "/invoices/ksef/{ksefNumber}/upo", invoice_upo_by_ksef),
        web.get(sessions + "/invoices/{invoiceReferenceNumber}", invoice_status),
        web.get(sessions + "/invoices/{invoiceReferenceNumber}/upo", invoice_upo),
        web.get(sessions + "/upo/{upoReferenceNumber}", session_upo),
        web.get("/v2/invoices/ksef/{ksefNumber}", invoice_by_number),
        web.get("/_blob/{kind:upo|invoice-upo}/{session}/{item}", blob),
    ]
