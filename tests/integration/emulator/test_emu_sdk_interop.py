"""Interop: the third-party PyPI SDK `ksef-client` (used purely as a client) against the
emulator: KSeF-token login, online session, send, close, KSeF number, UPO."""

from __future__ import annotations

import asyncio
import time

from ksef_client import AsyncKsefClient, KsefClientOptions
from ksef_client.models import FormCode
from ksef_client.services import AsyncAuthCoordinator, AsyncOnlineSessionWorkflow
from ksef_client.utils.ksef_number import validate_ksef_number
from lxml import etree

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.emulator import RunningEmulator
from pipeline.emulator.reference_client import ReferenceClient
from pipeline.emulator.timefmt import polish_day, utcnow
from pipeline.ksef.numbers import sha256_b64
from tests.unit.emulator import contract

UPO_NS = "{http://upo.schematy.mf.gov.pl/KSeF/v4-3}"


async def test_third_party_sdk_online_session(emulator: RunningEmulator,
                                              client: ReferenceClient) -> None:
    nip = seller_nips(1, seed=51)[0]
    token = (await client.admin("ksef-tokens", {"nip": nip}))["token"]
    xml = make_invoice(seller_nip=nip, number="SDK/1", issue_date=polish_day(utcnow()),
                       profile="typical")
    options = KsefClientOptions(base_url=emulator.base_url)
    async with AsyncKsefClient(options) as sdk:
        token_cert = await sdk.security.get_public_key_certificate("KsefTokenEncryption")
        auth = await AsyncAuthCoordinator(sdk.auth).authenticate_with_ksef_token(
            token=token, public_certificate=token_cert.certificate,
            public_key_id=token_cert.public_key_id, context_identifier_type="Nip",
            context_identifier_value=nip, poll_interval_seconds=0.05)
        access = auth.access_token
        key_cert = await sdk.security.get_public_key_certificate("SymmetricKeyEncryption")
        workflow = AsyncOnlineSessionWorkflow(sdk.sessions)
        session = await workflow.open_session(
            form_code=FormCode(system_code="FA (3)", schema_version="1-0E", value="FA"),
            public_certificate=key_cert.certificate, access_token=access, upo_v43=True)
        sent = await session.send_invoice(xml)
        await session.close()
        reference = session.session_reference_number
        deadline = time.monotonic() + 120  # generous: a loaded 2-core machine
        while True:
            status = await sdk.sessions.get_session_status(reference, access_token=access)
            if status.status.code not in (100, 170) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status.status.code == 200
        result = await sdk.sessions.get_session_invoice_status(
            reference, sent.reference_number, access_token=access)
        assert result.invoice_hash == sha256_b64(xml)
        assert validate_ksef_number(result.ksef_number).is_valid
        assert status.upo is not None
        upo = await sdk.sessions.get_session_upo(
            reference, status.upo.pages[0].reference_number, access_token=access)
        invoice_upo = await sdk.sessions.get_session_invoice_upo_by_ksef(
            reference, result.ksef_number, access_token=access)
    root = etree.fromstring(upo)
    assert root.findtext(f"{UPO_NS}Dokument/{UPO_NS}NumerKSeFDokumentu") == result.ksef_number
    assert root.findtext(f"{UPO_NS}Dokument/{UPO_NS}SkrotDokumentu") == sha256_b64(xml)
    if contract.SPEC_PATH.exists():
        xsd = etree.XMLSchema(etree.parse(str(contract.DOCS / "faktury/upo/schemy/upo-v4-3.xsd")))
        xsd.assertValid(root)
        xsd.assertValid(etree.fromstring(invoice_upo))
