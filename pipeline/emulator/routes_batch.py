"""Batch sessions: open (declaring the parts), pre-signed part uploads, close."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pipeline.emulator import refs, statuses
from pipeline.emulator.errors import (
    EMPTY_PACKAGE,
    PART_SIZE,
    TOO_MANY_PARTS,
    UPLOAD_TIMEOUT,
    VALIDATION,
    ApiError,
    bad_request,
)
from pipeline.emulator.request_helpers import emulator, field, read_json, require_context
from pipeline.emulator.routes_online import session_to_close
from pipeline.emulator.session_requests import encryption, form_code, positive_int, sha_field
from pipeline.emulator.state import Emulator
from pipeline.emulator.timefmt import iso, parse, utcnow
from pipeline.ksef.crypto import BLOCK_BYTES, HashingWriter

COMPRESSIONS = ("Zip", "TarGz")
BATCH_HOURS = 12


@dataclass(frozen=True)
class DeclaredPart:
    ordinal: int
    size: int
    sha256_b64: str


def _parts(emu: Emulator, batch: dict[str, Any]) -> list[DeclaredPart]:
    parts = field(batch, "fileParts", list)
    if not parts:
        raise bad_request(VALIDATION, "fileParts must declare at least one part")
    if len(parts) > emu.config.max_parts:
        raise bad_request(TOO_MANY_PARTS, f"{len(parts)} parts declared; at most "
                          f"{emu.config.max_parts} are allowed.")
    max_encrypted = emu.config.max_part_bytes + BLOCK_BYTES
    out = []
    for part in parts:
        if not isinstance(part, dict):
            raise bad_request(VALIDATION, "every fileParts item must be an object")
        ordinal = positive_int(part, "ordinalNumber")
        size = positive_int(part, "fileSize")
        if size > max_encrypted:
            raise bad_request(PART_SIZE, f"Rozmiar części {ordinal} przekroczył dozwolony "
                              f"rozmiar ({emu.config.max_part_bytes} bajtów przed "
                              "zaszyfrowaniem).")
        out.append(DeclaredPart(ordinal, size, str(sha_field(part, "fileHash"))))
    out.sort(key=lambda p: p.ordinal)
    if [p.ordinal for p in out] != list(range(1, len(out) + 1)):
        raise bad_request(VALIDATION, "fileParts ordinalNumber values must be 1..n, each once")
    return out


def upload_url(emu: Emulator, reference: str, ordinal: int, expires: int) -> str:
    signature = emu.sign("upload", reference, str(ordinal), str(expires))
    return f"{emu.base_url}/upload/{reference}/{ordinal}?expires={expires}&sig={signature}"


async def open_batch(request: web.Request) -> web.Response:
    emu = emulator(request)
    context = require_context(request)
    body = await read_json(request)
    form = form_code(body)
    batch = field(body, "batchFile", dict)
    package_size = positive_int(batch, "fileSize", emu.config.max_package_bytes)
    package_hash = sha_field(batch, "fileHash")
    compression = field(batch, "compressionType", str, required=False) or "Zip"
    if compression not in COMPRESSIONS:
        raise bad_request(VALIDATION, f"compressionType must be one of {COMPRESSIONS}")
    parts = _parts(emu, batch)
    enc = encryption(emu, body)
    offline = bool(field(body, "offlineMode", bool, required=False))
    now = utcnow()
    reference = refs.reference_number(refs.BATCH_SESSION, now)
    deadline = now + dt.timedelta(minutes=emu.config.upload_minutes_per_part * len(parts))
    emu.store.add_session({
        "reference": reference, "kind": statuses.BATCH, "nip": context.nip,
        "auth_reference": context.auth_reference, "token_reference": context.token_reference,
        "created": iso(now), "updated": iso(now),
        "valid_until": iso(now + dt.timedelta(hours=BATCH_HOURS)),
        "status_code": statuses.OPEN,
        "status_description": statuses.describe(statuses.BATCH, statuses.OPEN),
        "form_code": form, "wrapped_key": enc.wrapped_key, "iv": enc.iv,
        "offline_mode": int(offline), "upload_deadline": iso(deadline),
        "batch_file": json.dumps({"fileSize": package_size, "fileHash": package_hash,
                                  "compressionType": compression}),
    }, [{"session": reference, "ordinal": p.ordinal, "declared_size": p.size,
         "declared_hash": p.sha256_b64} for p in parts])
    expires = int(deadline.timestamp())
    requests = [{"ordinalNumber": p.ordinal, "method": "PUT",
                 "url": upload_url(emu, reference, p.ordinal, expires),
                 "headers": {"x-ms-blob-type": "BlockBlob",
                             "Content-Type": "application/octet-stream"}} for p in parts]
    return web.json_response({"referenceNumber": reference, "partUploadRequests": requests},
                             status=201)


def _forbidden_upload(detail: str) -> web.Response:
    return web.Response(status=403, text=detail)


async def upload_part(request: web.Request) -> web.Response:
    """PUT of one encrypted part to its pre-signed URL (no bearer token), streamed to disk."""
    emu = emulator(request)
    reference = request.match_info["reference"]
    ordinal = int(request.match_info["ordinal"])
    expires = request.query.get("expires", "")
    if not emu.signature_ok(request.query.get("sig", ""), "upload", reference, str(ordinal),
                            expires):
        return _forbidden_upload("invalid signature")
    if not expires.isdigit() or time.time() > int(expires):
        return _forbidden_upload("the upload window has expired")
    session = emu.store.session(reference)
    part = next((p for p in emu.store.parts(reference) if p["ordinal"] == ordinal), None)
    if session is None or part is None:
        return web.Response(status=404, text="unknown part")
    if session["status_code"] != statuses.OPEN:
        return _forbidden_upload(f"session status {session['status_code']} accepts no uploads")
    limit = emu.config.max_part_bytes + BLOCK_BYTES
    directory = emu.session_dir(reference)
    partial = directory / f"part-{ordinal}.partial"
    with partial.open("wb") as sink:
        writer = HashingWriter(sink)
        async for chunk in request.content.iter_chunked(1 << 20):
            writer.write(chunk)
            if writer.size > limit:
                break
    if writer.size > limit:
        partial.unlink(missing_ok=True)
        return web.Response(status=400, text=f"a part may have at most {limit} bytes")
    partial.replace(directory / f"part-{ordinal}.aes")
    digest = writer.digest()
    emu.store.record_upload(reference, ordinal, digest.size, digest.sha256_b64, iso(utcnow()))
    return web.Response(status=201)


async def close_batch(request: web.Request) -> web.Response:
    emu, session = session_to_close(request, statuses.BATCH)
    if parse(session["valid_until"]) <= utcnow():
        raise ApiError(400, UPLOAD_TIMEOUT, ["Sesja anulowana, przekroczony czas wysyłki."])
    for part in emu.store.parts(session["reference"]):
        if part["uploaded"] is None:
            raise bad_request(EMPTY_PACKAGE, f"Nie przesłano zadeklarowanej '{part['ordinal']}'"
                              " części pliku.")
        if part["uploaded_size"] != part["declared_size"]:
            raise bad_request(PART_SIZE, f"Zadeklarowany rozmiar części '{part['ordinal']}' nie "
                              "zgadza się z rzeczywistym.")
    assert emu.processor is not None
    emu.processor.close_batch(session)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v2/sessions/batch", open_batch),
        web.post("/v2/sessions/batch/{referenceNumber}/close", close_batch),
        web.put("/upload/{reference}/{ordinal:\\d+}", upload_part),
    ]
