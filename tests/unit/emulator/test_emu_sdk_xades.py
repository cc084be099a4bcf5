"""Interop: the PyPI SDK `ksef-client` (used purely as a client, schema 2.1 requests, its
xmlsec signer) logs in with a certificate and enrolls a KSeF certificate on the emulator."""

from __future__ import annotations

import base64

from cryptography import x509
from ksef_client import AsyncKsefClient, KsefClientOptions
from ksef_client.models import EnrollCertificateRequest, RetrieveCertificatesRequest
from ksef_client.services import AsyncAuthCoordinator
from ksef_client.services.csr import generate_csr_ec
from ksef_client.services.xades import XadesKeyPair

from pipeline.demo.samples import seller_nips
from pipeline.emulator import RunningEmulator
from pipeline.emulator.selfsigned import mint

NIP = seller_nips(1, seed=91)[0]


async def test_sdk_certificate_login_and_enrollment(emulator: RunningEmulator) -> None:
    credential = mint(NIP, "rsa")
    pair = XadesKeyPair(certificate_pem=credential.certificate_pem,
                        private_key_pem=credential.key_pem)
    async with AsyncKsefClient(KsefClientOptions(base_url=emulator.base_url)) as sdk:
        auth = await AsyncAuthCoordinator(sdk.auth).authenticate_with_xades_key_pair(
            key_pair=pair, context_identifier_type="Nip", context_identifier_value=NIP,
            subject_identifier_type="certificateSubject", poll_interval_seconds=0.05)
        access = auth.access_token
        data = await sdk.certificates.get_enrollment_data(access)
        csr = generate_csr_ec(data.to_dict())
        started = await sdk.certificates.send_enrollment(EnrollCertificateRequest.from_dict({
            "certificateName": "sdk enrolled", "certificateType": "Authentication",
            "csr": csr.csr_base64}), access_token=access)
        status = await sdk.certificates.get_enrollment_status(started.reference_number,
                                                              access_token=access)
        assert status.status.code == 200
        serial = status.certificate_serial_number
        assert serial is not None
        got = await sdk.certificates.retrieve_certificate(
            RetrieveCertificatesRequest.from_dict({"certificateSerialNumbers": [serial]}),
            access_token=access)
    issued = x509.load_der_x509_certificate(base64.b64decode(got.certificates[0].certificate))
    assert f"{issued.serial_number:X}" == serial
