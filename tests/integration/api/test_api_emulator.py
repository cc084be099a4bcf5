"""The API client end to end against the emulator: auth, a 3-part batch, paging, UPO, online.

The batch package is built by hand here (ZIP in memory, split binarily, each part
encrypted), independently of `pipeline.ksef.package`, so a shared mistake cannot hide.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from lxml import etree

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator import RunningEmulator
from pipeline.ksef.crypto import SessionKey, encrypt_cbc, wrap_key
from pipeline.ksef.numbers import ksef_number_is_valid, sha256_b64
from pipeline.ksef.package import BatchLimits, InvoiceSource, PackageBuilder, PackageFormat
from pipeline.ksef.ratelimit import SlidingWindowLimiter
from pipeline.ksef_api import (
    BatchSpec,
    Environment,
    HealthEvent,
    KsefApiError,
    KsefAuthError,
    KsefClient,
    KsefUnavailable,
    Outcome,
    PartSpec,
    RetryPolicy,
)
from pipeline.ksef_api.manifest import batch_spec, part_files, part_sizes
from tests.integration.api.conftest import ADMIN_HEADERS

TokenFor = Callable[[str], Awaitable[str]]


def today_pl() -> dt.date:
    return dt.datetime.now(ZoneInfo("Europe/Warsaw")).date()


def invoices(nip: str, count: int, prefix: str) -> list[bytes]:
    return [make_invoice(seller_nip=nip, number=f"{prefix}/{i}", issue_date=today_pl(),
                         profile="typical", seed=i) for i in range(1, count + 1)]


def package(docs: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, doc in enumerate(docs, 1):
            archive.writestr(f"invoice-{i:03d}.xml", doc)
    return buffer.getvalue()


def split_and_encrypt(
    archive: bytes, parts: int, key: SessionKey, directory: Path
) -> tuple[tuple[PartSpec, ...], dict[int, Path]]:
    size = math.ceil(len(archive) / parts)
    specs, files = [], {}
    for ordinal in range(1, parts + 1):
        chunk = archive[(ordinal - 1) * size: ordinal * size]
        encrypted = encrypt_cbc(key, chunk)
        path = directory / f"part-{ordinal:02d}.aes"
        path.write_bytes(encrypted)
        specs.append(PartSpec(ordinal, len(encrypted), sha256_b64(encrypted)))
        files[ordinal] = path
    return tuple(specs), files


def upo_numbers(document: bytes) -> set[str]:
    root = etree.fromstring(document)
    return {el.text for el in root.iter() if etree.QName(el).localname == "NumerKSeFDokumentu"
            and el.text}


async def test_batch_of_three_parts_end_to_end(
    ksef_env: Environment, token_for: TokenFor, tmp_path: Path
) -> None:
    nip = seller_nips(1, seed=601)[0]
    docs = invoices(nip, 25, f"API/B/{tmp_path.name}")
    hashes = {sha256_b64(doc): doc for doc in docs}
    archive = package(docs)
    key = SessionKey.generate()
    events: list[HealthEvent] = []
    async with KsefClient(ksef_env, nip, await token_for(nip), observer=events.append) as client:
        await client.authenticate()
        mf_key = await client.encryption_key()
        parts, files = split_and_encrypt(archive, 3, key, tmp_path)
        spec = BatchSpec(len(archive), sha256_b64(archive), parts,
                         wrap_key(mf_key.key, key.key), key.iv, "Zip",
                         public_key_id=mf_key.public_key_id)
        session = await client.open_batch_session(spec)
        assert [u.ordinal for u in session.part_uploads] == [1, 2, 3]
        uploaded: list[int] = []
        await client.upload_parts(session, files, sizes={p.ordinal: p.size for p in parts},
                                  on_uploaded=uploaded.append)
        assert sorted(uploaded) == [1, 2, 3]
        open_now = [s.reference_number async for s in client.list_sessions(
            "Batch", created_from=session.opened_at - dt.timedelta(minutes=1),
            statuses=["InProgress"])]
        assert open_now == [session.reference_number]
        await client.close_batch_session(session.reference_number)

        status = await client.wait_until_processed(session.reference_number, timeout=120)
        assert status.code == 200, status
        assert (status.invoice_count, status.successful_count, status.failed_count) == (
            25, 25, 0)
        assert status.upo_references

        pages = [page async for page in client.invoice_pages(session.reference_number,
                                                             page_size=10)]
        assert [len(p.invoices) for p in pages] == [10, 10, 5]
        assert pages[-1].continuation_token is None
        results = [r for page in pages for r in page.invoices]
        assert {r.invoice_hash for r in results} == set(hashes)
        assert sorted(r.ordinal for r in results) == list(range(1, 26))
        numbers = {r.ksef_number for r in results}
        assert all(r.accepted for r in results)
        assert all(n is not None and ksef_number_is_valid(n) for n in numbers)
        assert len(numbers) == 25
        assert {r.invoicing_mode for r in results} <= {"Online", "Offline"}
        assert all(r.acquisition_date is not None for r in results)
        assert [r async for r in client.failed_session_invoices(session.reference_number)] == []

        upos = await client.session_upos(status)
        assert set().union(*(upo_numbers(u.content) for u in upos)) == numbers
        first = results[0]
        assert first.ksef_number is not None
        single = await client.invoice_upo(session.reference_number,
                                          ksef_number=first.ksef_number)
        assert upo_numbers(single) == {first.ksef_number}
        assert await client.invoice_xml(first.ksef_number) == hashes[first.invoice_hash]
    assert events and all(e.outcome is Outcome.OK for e in events)
    assert any(e.endpoint == "PUT part-upload" for e in events)


async def test_online_session_send_duplicate_and_close(
    ksef_env: Environment, token_for: TokenFor, tmp_path: Path
) -> None:
    nip = seller_nips(1, seed=602)[0]
    doc = invoices(nip, 1, f"API/O/{tmp_path.name}")[0]
    async with KsefClient(ksef_env, nip, await token_for(nip)) as client:
        session = await client.open_online_session()
        sent = await client.send_invoice(session, doc)
        assert sent.invoice_hash == sha256_b64(doc)
        again = await client.send_invoice(session, doc)
        await client.close_online_session(session.reference_number)
        status = await client.wait_until_processed(session.reference_number, timeout=60)
        assert status.code == 200, status
        results = {r.reference_number: r
                   async for r in client.session_invoices(session.reference_number)}
        accepted = results[sent.reference_number]
        assert accepted.accepted and accepted.ksef_number is not None
        assert ksef_number_is_valid(accepted.ksef_number)
        duplicate = results[again.reference_number]
        assert duplicate.status_code == 440
        assert duplicate.original_ksef_number == accepted.ksef_number
        failed = [r async for r in client.failed_session_invoices(session.reference_number)]
        assert [r.reference_number for r in failed] == [again.reference_number]
        status_of_one = await client.invoice_status(session.reference_number,
                                                    sent.reference_number)
        assert status_of_one.ksef_number == accepted.ksef_number
        upo = await client.invoice_upo(session.reference_number,
                                       invoice_reference=sent.reference_number)
        assert upo_numbers(upo) == {accepted.ksef_number}


async def test_wrong_token_is_an_auth_error(ksef_env: Environment) -> None:
    nip = seller_nips(1, seed=603)[0]
    async with KsefClient(ksef_env, nip, "not-a-real-token") as client:
        with pytest.raises(KsefAuthError):
            await client.authenticate()


async def _admin(env: Environment, action: str, body: dict[str, object] | None = None) -> None:
    root = env.api_url.removesuffix("/v2")
    async with aiohttp.ClientSession() as http, http.post(
            f"{root}/_emulator/{action}", json=body or {}, headers=ADMIN_HEADERS) as response:
        assert response.status == 200, await response.text()


async def test_own_limiter_keeps_the_client_below_ksef_limits(
    ksef_env: Environment, token_for: TokenFor
) -> None:
    """Eleven status reads in a burst: our limiter spaces them, KSeF never says 429."""
    nip = seller_nips(1, seed=604)[0]
    events: list[HealthEvent] = []
    async with KsefClient(ksef_env, nip, await token_for(nip), observer=events.append) as client:
        session = await client.open_online_session()
        assert client.admission_wait("GET", f"/sessions/{session.reference_number}") == 0.0
        for _ in range(11):
            await client.session_status(session.reference_number)
    assert all(e.outcome is Outcome.OK for e in events)


async def test_a_429_is_honoured_and_the_call_succeeds(
    ksef_env: Environment, token_for: TokenFor
) -> None:
    """Without our limiter the emulator refuses the 11th read; Retry-After makes it pass."""
    nip = seller_nips(1, seed=605)[0]
    events: list[HealthEvent] = []
    no_limits = SlidingWindowLimiter({})
    async with KsefClient(ksef_env, nip, await token_for(nip), observer=events.append,
                          limiter=no_limits) as client:
        session = await client.open_online_session()
        statuses = [await client.session_status(session.reference_number) for _ in range(11)]
    assert all(s.code == 100 for s in statuses)
    limited = [e for e in events if e.outcome is Outcome.RATE_LIMITED]
    assert limited and limited[0].endpoint == "GET session-other"
    assert events[-1].outcome is Outcome.OK


async def test_outages_are_typed_and_observed(
    ksef_env: Environment, token_for: TokenFor
) -> None:
    nip = seller_nips(1, seed=606)[0]
    events: list[HealthEvent] = []
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)
    async with KsefClient(ksef_env, nip, await token_for(nip), observer=events.append,
                          policy=policy) as client:
        session = await client.open_online_session()
        await _admin(ksef_env, "down", {"mode": "503"})
        with pytest.raises(KsefUnavailable) as caught:
            await client.session_status(session.reference_number)
        assert caught.value.status == 503
        assert [e.outcome for e in events[-2:]] == [Outcome.UNAVAILABLE] * 2

        await _admin(ksef_env, "down", {"mode": "refuse"})
        before = len(events)
        with pytest.raises(KsefUnavailable):
            await client.open_online_session()  # may have arrived: not re-sent
        assert [e.outcome for e in events[before:]] == [Outcome.UNAVAILABLE]

        await _admin(ksef_env, "up")
        status = await client.session_status(session.reference_number)
        assert status.code == 100 and events[-1].outcome is Outcome.OK


async def test_packed_batch_from_the_package_builder(
    ksef_env: Environment, token_for: TokenFor, tmp_path: Path
) -> None:
    """A tar.gz package of many parts from `pipeline.ksef.package`, via the manifest adapter."""
    nip = seller_nips(1, seed=607)[0]
    docs = invoices(nip, 30, f"API/P/{tmp_path.name}")
    async with KsefClient(ksef_env, nip, await token_for(nip)) as client:
        mf_key = await client.encryption_key()
        builder = PackageBuilder(tmp_path / "spool", batch_id="api-test",
                                 fmt=PackageFormat.TAR_GZ,
                                 limits=BatchLimits().with_part_bytes(8_000), fsync=False)
        for offset, doc in enumerate(docs):
            builder.add(InvoiceSource("ksef.invoices.sealed", 0, offset), doc)
        packed = builder.finish(mf_key.key)
        manifest = packed.manifest
        assert len(manifest.parts) >= 5
        session = await client.open_batch_session(batch_spec(manifest))
        await client.upload_parts(session, part_files(manifest, packed.directory),
                                  sizes=part_sizes(manifest))
        await client.close_batch_session(session.reference_number)
        status = await client.wait_until_processed(session.reference_number, timeout=120)
        assert (status.code, status.successful_count) == (200, 30), status
        results = [r async for r in client.session_invoices(session.reference_number)]
        assert {r.invoice_hash for r in results} == {e.invoice_hash for e in manifest.entries}



async def test_close_repeated_after_a_lost_answer_counts_as_closed(
    ksef_env: Environment, token_for: TokenFor, running_emulator: RunningEmulator,
    tmp_path: Path
) -> None:
    """KSeF closed the session but the answer never arrived: the client reads the
    session's status instead of failing (or resending), and a close sent again anyway
    (a restarted worker) must not turn into a refusal (21180) of a batch KSeF is
    already processing."""
    nip = seller_nips(1, seed=609)[0]
    docs = invoices(nip, 4, f"API/L/{tmp_path.name}")
    async with KsefClient(ksef_env, nip, await token_for(nip)) as client:
        mf_key = await client.encryption_key()
        builder = PackageBuilder(tmp_path / "spool", batch_id="api-lost", fsync=False)
        for offset, doc in enumerate(docs):
            builder.add(InvoiceSource("ksef.invoices.sealed", 0, offset), doc)
        packed = builder.finish(mf_key.key)
        manifest = packed.manifest
        session = await client.open_batch_session(batch_spec(manifest))
        ref = session.reference_number
        await client.upload_parts(session, part_files(manifest, packed.directory),
                                  sizes=part_sizes(manifest))
        running_emulator.emulator.faults.lose_responses("/v2/sessions/batch/*/close")
        await client.close_batch_session(ref)  # the answer is lost; the status tells
        assert running_emulator.emulator.faults.snapshot()["lostResponses"] == {}
        assert (await client.session_status(ref)).code != 100  # KSeF did close it
        await client.close_batch_session(ref)  # again, as a restarted worker would
        status = await client.wait_until_processed(ref, timeout=120)
        assert (status.code, status.successful_count) == (200, 4), status

        still_open = await client.open_batch_session(batch_spec(manifest))
        with pytest.raises(KsefApiError) as refused:  # parts missing: a real refusal
            await client.close_batch_session(still_open.reference_number)
        assert refused.value.code == 21205



async def test_refresh_against_the_emulator(ksef_env: Environment, token_for: TokenFor) -> None:
    """A refused access token is renewed with the refresh token, not a new login."""
    nip = seller_nips(1, seed=608)[0]
    events: list[HealthEvent] = []
    async with KsefClient(ksef_env, nip, await token_for(nip), observer=events.append) as client:
        session = await client.open_online_session()
        auth = client._auth  # the token holder; reached into to force a renewal
        assert auth is not None
        auth.invalidate(await auth.access_token())
        status = await client.session_status(session.reference_number)
    assert status.code == 100
    endpoints = [e.endpoint.rsplit(" ", 1)[-1] for e in events]
    assert endpoints.count("/auth/token/redeem") == 1
    assert endpoints.count("/auth/token/refresh") == 1
    assert endpoints.index("/auth/token/refresh") < len(endpoints) - 1
    assert all(e.outcome is Outcome.OK for e in events)
