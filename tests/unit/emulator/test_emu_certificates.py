"""KSeF certificates in the emulator: enrollment from a CSR, issue by the emulator CA,
login with the issued certificate, query, retrieve and revoke (answers checked against
the official OpenAPI schemas)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from ksef_client.services.csr import generate_csr_rsa

from pipeline.demo.samples import seller_nips
from pipeline.emulator.enrollment import FIELDS
from pipeline.emulator.reference_client import ReferenceClient
from pipeline.emulator.selfsigned import MintedCredential, PrivateKey, mint, new_key
from tests.unit.emulator import contract
from tests.unit.emulator.xades_support import auth_request, challenge, login, sign, submit

NIP = seller_nips(1, seed=71)[0]
_OIDS = dict(FIELDS)


def csr_for(data: dict[str, Any], key: PrivateKey, **override: str) -> str:
    attributes = [x509.NameAttribute(_OIDS[k], str(v)) for k, v in {**data, **override}.items()]
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes)).sign(
        key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(Encoding.DER)).decode()


def checked(client: ReferenceClient) -> set[str]:
    return {contract.validate(x.method, x.path, x.status, x.content_type, x.body)
            for x in client.exchanges
            if x.path.startswith("/v2/certificates") and "json" in x.content_type}


async def enroll(client: ReferenceClient, token: str, key: PrivateKey, kind: str,
                 name: str = "pipeline cert") -> tuple[str, x509.Certificate]:
    data = await client.call("GET", "/certificates/enrollments/data", token=token)
    started = await client.call("POST", "/certificates/enrollments", token=token, json={
        "certificateName": name, "certificateType": kind, "csr": csr_for(data, key)})
    status = await client.call("GET", f"/certificates/enrollments/{started['referenceNumber']}",
                               token=token)
    assert status["status"]["code"] == 200, status
    serial = status["certificateSerialNumber"]
    got = await client.call("POST", "/certificates/retrieve", token=token,
                            json={"certificateSerialNumbers": [serial]})
    der = base64.b64decode(got["certificates"][0]["certificate"])
    return serial, x509.load_der_x509_certificate(der)


@pytest.fixture
async def seal_login(client: ReferenceClient) -> tuple[MintedCredential, str]:
    credential = mint(NIP, "rsa")
    tokens = await login(client, NIP, credential)
    return credential, str(tokens["accessToken"]["token"])


async def test_enrolled_certificate_authenticates_until_revoked(
        client: ReferenceClient, seal_login: tuple[MintedCredential, str]) -> None:
    _, token = seal_login
    limits = await client.call("GET", "/certificates/limits", token=token)
    assert limits["canRequest"] is True and limits["certificate"]["limit"] == 100
    data = await client.call("GET", "/certificates/enrollments/data", token=token)
    assert data["organizationIdentifier"] == f"VATPL-{NIP}"
    key = new_key("ec")
    serial, issued = await enroll(client, token, key, "Authentication")
    assert len(serial) == 16 and f"{issued.serial_number:X}" == serial
    assert issued.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "KSeF Emulator CA")
    assert issued.public_key() == key.public_key()
    assert issued.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert issued.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value == (
        f"VATPL-{NIP}")

    internal = MintedCredential(key, issued)
    document = sign(auth_request(await challenge(client), NIP), internal)
    attempt = await submit(client, document)
    assert attempt.status is not None and attempt.status["status"]["code"] == 200
    assert attempt.status["authenticationMethod"] == "InternalCertificate"

    listed = await client.call("POST", "/certificates/query", token=token, json={})
    assert [(c["certificateSerialNumber"], c["status"]) for c in listed["certificates"]] == [
        (serial, "Active")]
    assert listed["certificates"][0]["subjectIdentifier"] == {"type": "Nip", "value": NIP}
    await client.call("POST", f"/certificates/{serial}/revoke", token=token,
                      json={"revocationReason": "Superseded"})
    again = await client.call("POST", f"/certificates/{serial}/revoke", token=token, json={},
                              expect=400)
    assert again["exception"]["exceptionDetailList"][0]["exceptionCode"] == 25009
    revoked = await client.call("POST", "/certificates/query", token=token,
                                json={"status": "Revoked"})
    assert [c["certificateSerialNumber"] for c in revoked["certificates"]] == [serial]
    refused = await submit(client, sign(auth_request(await challenge(client), NIP), internal))
    assert refused.status is not None and refused.status["status"]["code"] == 460
    assert refused.status["status"]["details"][0] == "Certyfikat odwołany"
    assert {"GET /certificates/limits 200", "GET /certificates/enrollments/data 200",
            "POST /certificates/enrollments 202", "POST /certificates/retrieve 200",
            "GET /certificates/enrollments/{referenceNumber} 200",
            "POST /certificates/query 200",
            "POST /certificates/{certificateSerialNumber}/revoke 400"} <= checked(client)


async def test_offline_certificate_is_issued_but_cannot_log_in(
        client: ReferenceClient, seal_login: tuple[MintedCredential, str]) -> None:
    _, token = seal_login
    key = new_key("rsa")
    _, issued = await enroll(client, token, key, "Offline", "offline cert")
    usage = issued.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.content_commitment and not usage.digital_signature
    attempt = await submit(client, sign(auth_request(await challenge(client), NIP),
                                        MintedCredential(key, issued)))
    assert attempt.status is not None
    assert attempt.status["status"]["details"][0] == "Niepoprawny certyfikat"


async def test_bad_csrs_are_refused(client: ReferenceClient,
                                    seal_login: tuple[MintedCredential, str]) -> None:
    _, token = seal_login
    data = await client.call("GET", "/certificates/enrollments/data", token=token)
    cases = [
        (csr_for(data, new_key("ec"), organizationIdentifier="VATPL-0000000000"), 25003),
        (csr_for(data, rsa.generate_private_key(public_exponent=65537, key_size=1024)), 25010),
        (csr_for(data, ec.generate_private_key(ec.SECP384R1())), 25010),
        (base64.b64encode(b"not a csr").decode(), 25004),
    ]
    for csr, code in cases:
        answer = await client.call("POST", "/certificates/enrollments", token=token, expect=400,
                                   json={"certificateName": "bad one",
                                         "certificateType": "Authentication", "csr": csr})
        assert answer["exception"]["exceptionDetailList"][0]["exceptionCode"] == code


async def test_key_certified_once_only(client: ReferenceClient,
                                       seal_login: tuple[MintedCredential, str]) -> None:
    _, token = seal_login
    key = new_key("ec")
    await enroll(client, token, key, "Authentication")
    data = await client.call("GET", "/certificates/enrollments/data", token=token)
    started = await client.call("POST", "/certificates/enrollments", token=token, json={
        "certificateName": "same key", "certificateType": "Offline", "csr": csr_for(data, key)})
    status = await client.call("GET", f"/certificates/enrollments/{started['referenceNumber']}",
                               token=token)
    assert status["status"]["code"] == 400
    assert "certificateSerialNumber" not in status


async def test_token_login_cannot_enroll_and_anonymous_gets_401(
        client: ReferenceClient) -> None:
    token = await client.authenticate(NIP)
    answer = await client.call("GET", "/certificates/enrollments/data", token=token, expect=400)
    assert answer["exception"]["exceptionDetailList"][0]["exceptionCode"] == 25001
    await client.call("GET", "/certificates/limits", expect=401)


async def test_csr_from_the_sdk_is_accepted_for_a_person(client: ReferenceClient) -> None:
    tokens = await login(client, NIP, mint(NIP, "ec", shape="person"))
    token = tokens["accessToken"]["token"]
    data = await client.call("GET", "/certificates/enrollments/data", token=token)
    assert data["serialNumber"] == f"TINPL-{NIP}" and data["surname"] == "Kowalski"
    csr = generate_csr_rsa(data)
    started = await client.call("POST", "/certificates/enrollments", token=token, json={
        "certificateName": "sdk made", "certificateType": "Authentication",
        "csr": csr.csr_base64})
    status = await client.call("GET", f"/certificates/enrollments/{started['referenceNumber']}",
                               token=token)
    assert status["status"]["code"] == 200
    listed = await client.call("POST", "/certificates/query?pageSize=10", token=token,
                               json={"type": "Authentication"})
    assert listed["certificates"][0]["commonName"] == "Jan Kowalski"
