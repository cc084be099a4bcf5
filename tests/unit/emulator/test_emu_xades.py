"""`POST /auth/xades-signature`: every refusal KSeF documents, and self-signed logins.

Signatures are made with `ksef-client`'s xmlsec signer; the emulator verifies them with
signxml, so each accepted case is also a cross-implementation check.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree

from pipeline.demo.samples import seller_nips
from pipeline.emulator import RunningEmulator
from pipeline.emulator.reference_client import ReferenceClient
from pipeline.emulator.selfsigned import (
    MintedCredential,
    mint,
    new_key,
    self_signed,
    subject_for,
)
from tests.unit.emulator import contract
from tests.unit.emulator.xades_support import (
    AUTH_NS,
    DS,
    auth_request,
    challenge,
    login,
    resign,
    sign,
    sign_with_signxml,
    submit,
)

NIP, OTHER = seller_nips(2, seed=61)
XADES = "http://uri.etsi.org/01903/v1.3.2#"
CERT_FAILED = "Uwierzytelnianie zakończone niepowodzeniem z powodu błędu certyfikatu"


@pytest.fixture(scope="module")
def rsa_seal() -> MintedCredential:
    return mint(NIP, "rsa")


@pytest.fixture(scope="module")
def ec_person() -> MintedCredential:
    return mint(NIP, "ec", shape="person")


async def signed_for(client: ReferenceClient, credential: MintedCredential, nip: str = NIP,
                     subject_type: str = "certificateSubject") -> bytes:
    return sign(auth_request(await challenge(client), nip, subject_type), credential)


def edit(document: bytes, path: str, text: str) -> bytes:
    root = etree.fromstring(document)
    node = root.find(path)
    assert node is not None, path
    node.text = text
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def validate_status(status: dict[str, object]) -> None:
    contract.validate("GET", "/v2/auth/20250101-AU-0000000000-0000000000-00", 200,
                      "application/json", status)


# accepted


@pytest.mark.parametrize("kind", ["rsa_seal", "ec_person"])
async def test_self_signed_certificate_logs_in_and_tokens_work(
        kind: str, request: pytest.FixtureRequest, client: ReferenceClient) -> None:
    credential: MintedCredential = request.getfixturevalue(kind)
    attempt = await submit(client, await signed_for(client, credential))
    assert attempt.http_status == 202
    contract.validate("POST", "/v2/auth/xades-signature", 202, "application/json", attempt.body)
    assert attempt.status is not None
    validate_status(attempt.status)
    assert attempt.status["status"] == {"code": 200,
                                        "description": "Uwierzytelnianie zakończone sukcesem"}
    assert attempt.status["authenticationMethod"] == (
        "QualifiedSeal" if kind == "rsa_seal" else "QualifiedSignature")
    assert attempt.status["authenticationMethodInfo"]["category"] == "XadesSignature"
    operation = attempt.body["authenticationToken"]["token"]
    tokens = await client.call("POST", "/auth/token/redeem", token=operation)
    await client.call("GET", "/sessions?pageSize=10", token=tokens["accessToken"]["token"])
    refreshed = await client.call("POST", "/auth/token/refresh",
                                  token=tokens["refreshToken"]["token"])
    await client.call("GET", "/sessions?pageSize=10", token=refreshed["accessToken"]["token"])
    await client.call("POST", "/auth/token/redeem", token=operation, expect=400)


async def test_signature_from_a_second_signer_is_accepted(client: ReferenceClient,
                                                           ec_person: MintedCredential) -> None:
    document = sign_with_signxml(auth_request(await challenge(client), NIP), ec_person)
    attempt = await submit(client, document)
    assert attempt.status is not None and attempt.status["status"]["code"] == 200


# refused at once: the document or its signature


async def test_ecdsa_value_must_be_r_concatenated_with_s(client: ReferenceClient,
                                                        ec_person: MintedCredential) -> None:
    der_signed = resign(await signed_for(client, ec_person), ec_person, der_ecdsa=True)
    attempt = await submit(client, der_signed)
    assert attempt.exception_code == 9105
    assert "Expected 64 byte SignatureValue" in attempt.exception_details[0]


async def test_rsa_key_under_2048_bits_is_refused(client: ReferenceClient) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    now = dt.datetime.now(dt.UTC)
    weak = MintedCredential(key, self_signed(key, subject_for(NIP), now - dt.timedelta(hours=1),
                                             now + dt.timedelta(days=1)))
    attempt = await submit(client, await signed_for(client, weak))
    assert attempt.exception_code == 9105
    assert "RSA key of 1024 bits" in attempt.exception_details[0]


async def test_tampered_document_is_refused(client: ReferenceClient,
                                            rsa_seal: MintedCredential) -> None:
    document = await signed_for(client, rsa_seal)
    tampered = edit(document, f"{{{AUTH_NS}}}ContextIdentifier/{{{AUTH_NS}}}Nip", OTHER)
    attempt = await submit(client, tampered)
    assert attempt.http_status == 400
    contract.validate("POST", "/v2/auth/xades-signature", 400, "application/json", attempt.body)
    assert attempt.exception_code == 9105
    assert "Digest mismatch for reference 0" in attempt.exception_details[0]


async def test_wrong_reference_digest_is_refused(client: ReferenceClient,
                                                 ec_person: MintedCredential) -> None:
    document = await signed_for(client, ec_person)
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    path = f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference/{{{DS}}}DigestValue"
    attempt = await submit(client, resign(edit(document, path, wrong), ec_person))
    assert attempt.exception_code == 9105
    assert "Digest mismatch for reference 0" in attempt.exception_details[0]


async def test_signature_by_another_key_is_refused(client: ReferenceClient,
                                                   rsa_seal: MintedCredential) -> None:
    intruder = mint(NIP, "rsa")
    document = await signed_for(client, intruder)
    shown = base64.b64encode(rsa_seal.certificate.public_bytes(Encoding.DER)).decode()
    path = f"{{{DS}}}Signature/{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"
    attempt = await submit(client, edit(document, path, shown))
    assert attempt.exception_code == 9105
    assert "Signature verification failed" in attempt.exception_details[0]


async def test_signing_certificate_digest_of_another_certificate_is_refused(
        client: ReferenceClient, rsa_seal: MintedCredential) -> None:
    document = await signed_for(client, rsa_seal)
    root = etree.fromstring(document)
    other = mint(NIP, "rsa").certificate.fingerprint(hashes.SHA256())
    root.find(f".//{{{XADES}}}CertDigest/{{{DS}}}DigestValue").text = (
        base64.b64encode(other).decode())
    props = root.find(f".//{{{XADES}}}SignedProperties")
    digest = hashlib.sha256(etree.tostring(props, method="c14n", exclusive=True)).digest()
    ref = root.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference[@URI="
                    "'#SignedProperties']/{http://www.w3.org/2000/09/xmldsig#}DigestValue")
    ref.text = base64.b64encode(digest).decode()
    attempt = await submit(client, resign(etree.tostring(root), rsa_seal))
    assert attempt.exception_code == 9105
    assert "certificate digest" in attempt.exception_details[0]


async def test_detached_signature_is_refused(client: ReferenceClient,
                                             rsa_seal: MintedCredential) -> None:
    document = await signed_for(client, rsa_seal)
    ref = f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference"
    root = etree.fromstring(document)
    root.find(ref).set("URI", "https://example.com/AuthTokenRequest.xml")
    attempt = await submit(client, resign(etree.tostring(root), rsa_seal))
    assert attempt.exception_code == 9105
    assert "detached signatures are not accepted" in attempt.exception_details[0]


async def test_signature_over_part_of_the_document_is_refused(
        client: ReferenceClient, rsa_seal: MintedCredential) -> None:
    document = await signed_for(client, rsa_seal)
    root = etree.fromstring(document)
    root.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference").set("URI", "#ctx")
    attempt = await submit(client, resign(etree.tostring(root), rsa_seal))
    assert attempt.exception_code == 9105
    assert "covers only part of the document" in attempt.exception_details[0]


async def test_missing_and_doubled_signatures_and_garbage(client: ReferenceClient,
                                                          rsa_seal: MintedCredential) -> None:
    unsigned = auth_request(await challenge(client), NIP).encode()
    assert (await submit(client, unsigned)).exception_code == 9102
    root = etree.fromstring(await signed_for(client, rsa_seal))
    root.append(etree.fromstring(etree.tostring(root.find(f"{{{DS}}}Signature"))))
    assert (await submit(client, etree.tostring(root))).exception_code == 9103
    assert (await submit(client, b"<not xml")).exception_code == 21001


# refused at once: the challenge


async def test_reused_unknown_and_expired_challenges_are_refused(
        emulator: RunningEmulator, client: ReferenceClient, rsa_seal: MintedCredential) -> None:
    document = await signed_for(client, rsa_seal)
    assert (await submit(client, document)).http_status == 202
    reused = await submit(client, document)
    assert reused.exception_code == 21111
    assert "used before" in reused.exception_details[0]
    never = sign(auth_request("20250604-CR-461EA5B000-537A6BA15D-D7", NIP), rsa_seal)
    assert (await submit(client, never)).exception_code == 21111
    value = await challenge(client)
    emulator.emulator.store.run("UPDATE challenges SET timestamp_ms = timestamp_ms - 660000 "
                                "WHERE challenge = ?", (value,))
    expired = await submit(client, sign(auth_request(value, NIP), rsa_seal))
    assert expired.exception_code == 21111
    assert "expired" in expired.exception_details[0]


# started, then failed with KSeF's status


async def test_expired_and_not_yet_valid_certificates_fail_with_460(
        client: ReferenceClient) -> None:
    now = dt.datetime.now(dt.UTC)
    expired = mint(NIP, "ec", not_before=now - dt.timedelta(days=30),
                   not_after=now - dt.timedelta(days=1))
    future = mint(NIP, "rsa", not_before=now + dt.timedelta(days=1),
                  not_after=now + dt.timedelta(days=30))
    for credential, words in ((expired, "expired at"), (future, "is not valid before")):
        attempt = await submit(client, await signed_for(client, credential))
        assert attempt.http_status == 202
        assert attempt.status is not None
        validate_status(attempt.status)
        assert attempt.status["status"]["code"] == 460
        assert attempt.status["status"]["description"] == CERT_FAILED
        assert attempt.status["status"]["details"][0] == "Nieważny certyfikat"
        assert words in attempt.status["status"]["details"][1]
        operation = attempt.body["authenticationToken"]["token"]
        await client.call("POST", "/auth/token/redeem", token=operation, expect=400)


async def test_certificate_clock_makes_a_valid_certificate_expire(
        client: ReferenceClient, rsa_seal: MintedCredential) -> None:
    await client.admin("clock", {"offsetSeconds": 400 * 86400})
    attempt = await submit(client, await signed_for(client, rsa_seal))
    assert attempt.status is not None and attempt.status["status"]["code"] == 460
    await client.admin("clock", {})
    await login(client, NIP, rsa_seal)


async def test_nip_without_permission_fails_with_415_until_granted(
        client: ReferenceClient, rsa_seal: MintedCredential) -> None:
    attempt = await submit(client, await signed_for(client, rsa_seal, OTHER))
    assert attempt.status is not None
    validate_status(attempt.status)
    assert attempt.status["status"]["code"] == 415
    assert attempt.status["status"]["details"][0] == "Brak przypisanych uprawnień"
    assert f"Nip {NIP} has no permission in the context of NIP {OTHER}" in (
        attempt.status["status"]["details"][1])
    await client.call("POST", "/testdata/permissions", json={
        "contextIdentifier": {"type": "Nip", "value": OTHER},
        "authorizedIdentifier": {"type": "Nip", "value": NIP},
        "permissions": [{"permissionType": "InvoiceWrite", "description": "test grant"}]})
    await login(client, OTHER, rsa_seal)
    await client.call("POST", "/testdata/permissions/revoke", json={
        "contextIdentifier": {"type": "Nip", "value": OTHER},
        "authorizedIdentifier": {"type": "Nip", "value": NIP}})
    again = await submit(client, await signed_for(client, rsa_seal, OTHER))
    assert again.status is not None and again.status["status"]["code"] == 415


async def test_fingerprint_subject_needs_a_granted_fingerprint(
        client: ReferenceClient) -> None:
    now = dt.datetime.now(dt.UTC)
    key = new_key("ec")
    foreign = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Foreign representative"),
                         x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")])
    nameless = MintedCredential(key, self_signed(key, foreign, now - dt.timedelta(hours=1),
                                               now + dt.timedelta(days=1)))
    by_subject = await submit(client, await signed_for(client, nameless))
    assert by_subject.status is not None
    assert by_subject.status["status"]["details"][0] == "Niepoprawny certyfikat"
    by_print = await submit(client, await signed_for(client, nameless,
                                                     subject_type="certificateFingerprint"))
    assert by_print.status is not None and by_print.status["status"]["code"] == 415
    await client.admin("permissions", {"context": NIP, "subjectType": "Fingerprint",
                                       "subject": nameless.fingerprint.lower()})
    await login(client, NIP, nameless, "certificateFingerprint")


async def test_revoked_certificate_fails_with_460_and_its_logins_end(
        client: ReferenceClient) -> None:
    credential = mint(NIP, "ec")
    tokens = await login(client, NIP, credential)
    revoked = await client.admin("certificates/revoke", {"serial": credential.serial_hex,
                                                         "reason": "KeyCompromise"})
    assert revoked["alreadyRevoked"] is False
    attempt = await submit(client, await signed_for(client, credential))
    assert attempt.status is not None
    assert attempt.status["status"]["code"] == 460
    assert attempt.status["status"]["details"][0] == "Certyfikat odwołany"
    assert "KeyCompromise" in attempt.status["status"]["details"][1]
    await client.call("GET", "/sessions?pageSize=10", token=tokens["accessToken"]["token"],
                      expect=401)
    await client.call("POST", "/auth/token/refresh", token=tokens["refreshToken"]["token"],
                      expect=400)


async def test_self_signed_is_refused_when_the_chain_must_be_verified(
        client: ReferenceClient, rsa_seal: MintedCredential) -> None:
    attempt = await submit(client, await signed_for(client, rsa_seal),
                           "?verifyCertificateChain=true")
    assert attempt.status is not None
    assert attempt.status["status"]["details"][0] == "Niezaufany łańcuch certyfikatów"

