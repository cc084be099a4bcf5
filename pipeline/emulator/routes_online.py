"""Interactive (online) sessions: open, send invoices one by one, close."""

from __future__ import annotations

import datetime as dt
import json

from aiohttp import web

from pipeline.emulator import refs, statuses
from pipeline.emulator.errors import (
    CORRECTION_NOT_ALLOWED,
    CORRECTION_UNAVAILABLE,
    FILE_HASH,
    FILE_SIZE,
    INVOICE_LIMIT,
    SESSION_NOT_FOUND,
    SESSION_STATUS,
    VALIDATION,
    bad_request,
)
from pipeline.emulator.outcomes import invoice_status_description
from pipeline.emulator.request_helpers import (
    b64_field,
    emulator,
    field,
    read_json,
    require_context,
)
from pipeline.emulator.session_requests import encryption, form_code, positive_int, sha_field
from pipeline.emulator.state import Emulator
from pipeline.emulator.store import Row
from pipeline.emulator.timefmt import iso, parse, utcnow
from pipeline.emulator.tokens import Context
from pipeline.ksef.crypto import decrypt_cbc
from pipeline.ksef.numbers import sha256_b64
from pipeline.ksef.package.limits import KSEF_MAX_INVOICE_BYTES

DECRYPTION_FAILED = 435


def own_session(emu: Emulator, context: Context, reference: str, kind: str | None = None,
                ) -> Row:
    session = emu.store.session(reference)
    if session is None or session["nip"] != context.nip or (
            kind is not None and session["kind"] != kind):
        raise bad_request(SESSION_NOT_FOUND, f"Sesja o numerze referencyjnym {reference} nie "
                          "została znaleziona.")
    return session


async def open_online(request: web.Request) -> web.Response:
    emu = emulator(request)
    context = require_context(request)
    body = await read_json(request)
    form = form_code(body)
    enc = encryption(emu, body)
    now = utcnow()
    reference = refs.reference_number(refs.ONLINE_SESSION, now)
    valid_until = now + dt.timedelta(hours=emu.config.online_session_hours)
    row = {"reference": reference, "kind": statuses.ONLINE, "nip": context.nip,
           "auth_reference": context.auth_reference, "token_reference": context.token_reference,
           "created": iso(now), "updated": iso(now), "valid_until": iso(valid_until),
           "status_code": statuses.OPEN,
           "status_description": statuses.describe(statuses.ONLINE, statuses.OPEN),
           "form_code": form, "wrapped_key": enc.wrapped_key, "iv": enc.iv}
    emu.store.add_session(row)
    try:
        emu.session_key(row)
    except ValueError as exc:
        emu.store.update_session(
            reference, status_code=statuses.KEY_FAILED,
            status_description=statuses.describe(statuses.ONLINE, statuses.KEY_FAILED),
            status_details=json.dumps([str(exc)]))
    return web.json_response({"referenceNumber": reference, "validUntil": iso(valid_until)},
                             status=201)


def _check_correction(emu: Emulator, context: Context, corrected: str, offline: bool) -> None:
    """Technical correction of a rejected offline invoice: allowed once, online only."""
    if not offline:
        raise bad_request(VALIDATION, "a technical correction must be sent with offlineMode "
                          "true")
    originals = [r for r in emu.store.invoices_by_hash(corrected) if r["context_nip"] ==
                 context.nip and r["corrected_hash"] is None]
    if not originals:
        raise bad_request(VALIDATION, f"no invoice with hash {corrected} was sent in this "
                          "context")
    if any(r["status_code"] == 200 for r in originals):
        raise bad_request(CORRECTION_NOT_ALLOWED, "Nie można wysłać korekty technicznej do "
                          "prawidłowo przetworzonej faktury.")
    if any(r["status_code"] < 300 for r in emu.store.corrections_of(corrected)):
        raise bad_request(CORRECTION_UNAVAILABLE, "Faktura posiada już przetworzoną "
                          "prawidłowo korektę techniczną.")


async def send_invoice(request: web.Request) -> web.Response:
    emu = emulator(request)
    context = require_context(request)
    reference = request.match_info["referenceNumber"]
    body = await read_json(request)
    session = own_session(emu, context, reference, statuses.ONLINE)
    assert emu.processor is not None
    if session["status_code"] == statuses.OPEN and parse(session["valid_until"]) <= utcnow():
        emu.processor.close_online(session)  # past validUntil: KSeF closes it by itself
        session = {**session, "status_code": statuses.CLOSED}
    if session["status_code"] != statuses.OPEN:
        raise bad_request(SESSION_STATUS, f"Status sesji {session['status_code']} "
                          "uniemożliwia wysyłkę faktur.")
    if session["invoice_count"] >= emu.config.max_invoices:
        raise bad_request(INVOICE_LIMIT, f"Sesja o numerze referencyjnym {reference} osiągnęła "
                          f"dozwolony limit liczby faktur {emu.config.max_invoices}.")
    invoice_hash = sha_field(body, "invoiceHash")
    invoice_size = positive_int(body, "invoiceSize", KSEF_MAX_INVOICE_BYTES)
    encrypted_hash = sha_field(body, "encryptedInvoiceHash")
    encrypted_size = positive_int(body, "encryptedInvoiceSize", KSEF_MAX_INVOICE_BYTES + 16)
    content = b64_field(body, "encryptedInvoiceContent")
    offline = bool(field(body, "offlineMode", bool, required=False))
    corrected = sha_field(body, "hashOfCorrectedInvoice", required=False)
    assert content is not None and invoice_hash is not None
    if len(content) != encrypted_size:
        raise bad_request(FILE_SIZE, "Długość treści nie zgadza się z rozmiarem pliku.")
    if sha256_b64(content) != encrypted_hash:
        raise bad_request(FILE_HASH, "Skrót treści nie zgadza się ze skrótem pliku.")
    if corrected is not None:
        _check_correction(emu, context, corrected, offline)
    try:
        plain: bytes | None = decrypt_cbc(emu.session_key(session), content)
    except ValueError:
        plain = None
    if plain is not None and len(plain) != invoice_size:
        raise bad_request(FILE_SIZE, "Rozmiar faktury nie zgadza się z zadeklarowanym.")
    if plain is not None and sha256_b64(plain) != invoice_hash:
        raise bad_request(FILE_HASH, "Skrót faktury nie zgadza się z zadeklarowanym.")
    now = utcnow()
    code = 100 if plain is not None else DECRYPTION_FAILED
    invoice_ref = refs.reference_number(refs.INVOICE, now)
    details = None if plain is not None else json.dumps(
        ["the invoice could not be decrypted with the session key"])
    emu.store.add_online_invoice({
        "reference": invoice_ref, "session": reference, "ordinal": session["invoice_count"] + 1,
        "invoice_hash": invoice_hash, "invoicing_date": iso(now), "status_code": code,
        "status_description": invoice_status_description(code), "status_details": details,
        "offline_declared": int(offline), "corrected_hash": corrected, "size": invoice_size,
    }, plain)
    if plain is not None:
        emu.processor.enqueue_online(invoice_ref)
    return web.json_response({"referenceNumber": invoice_ref}, status=202)


def session_to_close(request: web.Request, kind: str) -> tuple[Emulator, Row]:
    """The caller's open session of `kind` named in the path (21173 / 21180 otherwise)."""
    emu = emulator(request)
    context = require_context(request)
    session = own_session(emu, context, request.match_info["referenceNumber"], kind)
    if session["status_code"] != statuses.OPEN:
        raise bad_request(SESSION_STATUS, f"Status sesji {session['status_code']} "
                          "uniemożliwia jej zamknięcie.")
    return emu, session


async def close_online(request: web.Request) -> web.Response:
    emu, session = session_to_close(request, statuses.ONLINE)
    assert emu.processor is not None
    emu.processor.close_online(session)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v2/sessions/online", open_online),
        web.post("/v2/sessions/online/{referenceNumber}/invoices", send_invoice),
        web.post("/v2/sessions/online/{referenceNumber}/close", close_online),
    ]
