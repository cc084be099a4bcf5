from __future__ import annotations

import datetime as dt

import pytest
from ksef_client import models as sdk

from pipeline.ksef_api.environments import environment
from pipeline.ksef_api.errors import KsefProtocolError
from pipeline.ksef_api.results import (
    BatchSession,
    PartUpload,
    invoice_result_from,
    parse_api_datetime,
    part_upload_from,
    session_status_from,
)

SESSION = "20250626-SB-213D593000-4DE10D80A5-E9"


def test_session_status_with_upo_pages() -> None:
    model = sdk.SessionStatusResponse.from_dict({
        "status": {"code": 200, "description": "Sesja wsadowa przetworzona pomyślnie"},
        "dateCreated": "2025-09-18T15:00:30+00:00",
        "dateUpdated": "2025-09-18T15:01:20.1234567+00:00",
        "upo": {"pages": [{
            "referenceNumber": "20250901-EU-47FDBE3000-5961A5D232-BF",
            "downloadUrl": f"/api/v2/sessions/{SESSION}/upo/20250901-EU-47FDBE3000-5961A5D232-BF",
            "downloadUrlExpirationDate": "2025-09-19T15:01:20Z"}]},
        "invoiceCount": 3, "successfulInvoiceCount": 2, "failedInvoiceCount": 1,
    })
    status = session_status_from(SESSION, model)
    assert (status.code, status.invoice_count, status.successful_count, status.failed_count) == (
        200, 3, 2, 1)
    assert status.upo_references == ("20250901-EU-47FDBE3000-5961A5D232-BF",)
    assert status.succeeded and status.is_terminal
    assert status.updated == dt.datetime(2025, 9, 18, 15, 1, 20, 123456, tzinfo=dt.UTC)


def test_processing_session_is_not_terminal() -> None:
    model = sdk.SessionStatusResponse.from_dict({
        "status": {"code": 150, "description": "Trwa przetwarzanie"},
        "dateCreated": "2025-09-18T15:00:30+00:00", "dateUpdated": "2025-09-18T15:00:31+00:00"})
    status = session_status_from(SESSION, model)
    assert not status.is_terminal and status.upo_pages == () and status.invoice_count is None


def test_accepted_invoice_result() -> None:
    model = sdk.SessionInvoiceStatusResponse.from_dict({
        "ordinalNumber": 1, "invoiceNumber": "FV/1/2026",
        "ksefNumber": "5265877635-20250826-0100001AF629-AF",
        "referenceNumber": "20250626-EE-2F20AD2000-242386DF86-52",
        "invoiceHash": "mkht+3m5trnfxlTYhq3QFn74LkEO69MFNlsMAkCDSPA=",
        "invoiceFileName": "1.xml",
        "acquisitionDate": "2025-08-26T10:00:00.0000001+02:00",
        "invoicingDate": "2025-08-26T09:59:00+02:00",
        "invoicingMode": "Offline",
        "status": {"code": 200, "description": "Sukces"}})
    result = invoice_result_from(model)
    assert result.accepted and result.is_final
    assert result.invoicing_mode == "Offline"
    assert result.acquisition_date == dt.datetime(2025, 8, 26, 8, 0, tzinfo=dt.UTC)
    assert result.original_ksef_number is None


def test_duplicate_carries_the_original_ksef_number() -> None:
    model = sdk.SessionInvoiceStatusResponse.from_dict({
        "ordinalNumber": 2, "referenceNumber": "20250626-EE-2F20AD2000-242386DF86-53",
        "invoiceHash": "mkht+3m5trnfxlTYhq3QFn74LkEO69MFNlsMAkCDSPA=",
        "invoicingDate": "2025-08-26T09:59:00+02:00",
        "status": {"code": 440, "description": "Duplikat faktury",
                   "details": ["Duplikat faktury"],
                   "extensions": {"originalKsefNumber": "5265877635-20250826-0100001AF629-AF",
                                  "originalSessionReferenceNumber": SESSION}}})
    result = invoice_result_from(model)
    assert not result.accepted and result.status_code == 440
    assert result.original_ksef_number == "5265877635-20250826-0100001AF629-AF"
    assert result.original_session_reference == SESSION
    hash(result)  # frozen results stay hashable despite the extensions mapping


def test_missing_required_fields_are_protocol_errors() -> None:
    model = sdk.SessionInvoiceStatusResponse.from_dict({
        "ordinalNumber": 1, "invoicingDate": "2025-08-26T09:59:00Z",
        "referenceNumber": "x", "status": {"code": 200, "description": "ok"}})
    with pytest.raises(KsefProtocolError, match="invoiceHash"):
        invoice_result_from(model)
    with pytest.raises(KsefProtocolError, match="not an ISO"):
        parse_api_datetime("yesterday", "dateCreated")


def test_part_upload_never_shows_the_presigned_credential() -> None:
    model = sdk.PartUploadRequest.from_dict({
        "ordinalNumber": 1, "method": "put",
        "url": "https://storage/batch-parts/1?skoid=a&sig=SECRET%3D",
        "headers": {"x-ms-blob-type": "BlockBlob", "x-empty": None}})
    upload = part_upload_from(model)
    assert upload.method == "PUT" and dict(upload.headers) == {"x-ms-blob-type": "BlockBlob"}
    assert "SECRET" not in repr(upload) and "storage/batch-parts/1" in repr(upload)


def test_environments_by_name() -> None:
    prod = environment("prod")
    assert prod.api_url == "https://api.ksef.mf.gov.pl/v2"
    assert prod.latarnia_url == "https://api-latarnia.ksef.mf.gov.pl"
    assert environment("production") == prod
    assert environment("test").limits_profile == "test"
    assert environment("demo").api_url == "https://api-demo.ksef.mf.gov.pl/v2"
    emu = environment("emulator", "http://127.0.0.1:8321/")
    assert (emu.api_url, emu.latarnia_url) == ("http://127.0.0.1:8321/v2",
                                               "http://127.0.0.1:8321/latarnia")
    assert environment("emulator", "http://127.0.0.1:8321/v2").api_url == emu.api_url
    with pytest.raises(ValueError, match="needs its URL"):
        environment("emulator")
    with pytest.raises(ValueError, match="unknown"):
        environment("staging")
    with pytest.raises(ValueError, match="absolute"):
        environment("emulator", "127.0.0.1:8321")


def test_upload_window_is_twenty_minutes_per_part() -> None:
    opened = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
    session = BatchSession("ref", tuple(PartUpload(n, "PUT", f"https://s/{n}")
                                        for n in (1, 2, 3)), opened)
    assert session.upload_window_ends == opened + dt.timedelta(hours=1)
