"""Making XAdES-signed AuthTokenRequests for the emulator's tests.

Signatures come from `ksef-client`'s xmlsec signer (the library the pipeline signs
with), never from the emulator's verifier. `resign` recomputes only the SignatureValue
over an edited SignedInfo, to make a correctly signed document with a wrong digest.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from ksef_client.services.xades import sign_xades_enveloped
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.xades.xades import XAdESSigner

from pipeline.emulator.reference_client import ReferenceClient
from pipeline.emulator.selfsigned import MintedCredential

DS = "http://www.w3.org/2000/09/xmldsig#"
AUTH_NS = "http://ksef.mf.gov.pl/auth/token/2.0"


def auth_request(challenge: str, nip: str, subject_type: str = "certificateSubject") -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n'
            f'<AuthTokenRequest xmlns="{AUTH_NS}">\n'
            f"  <Challenge>{challenge}</Challenge>\n"
            f"  <ContextIdentifier>\n    <Nip>{nip}</Nip>\n  </ContextIdentifier>\n"
            f"  <SubjectIdentifierType>{subject_type}</SubjectIdentifierType>\n"
            f"</AuthTokenRequest>")


def sign(xml: str, credential: MintedCredential) -> bytes:
    return sign_xades_enveloped(xml, credential.certificate_pem, credential.key_pem).encode()


def sign_with_signxml(xml: str, credential: MintedCredential) -> bytes:
    """A second, unrelated signer: signxml's XAdES-BES (c14n 1.1, SigningCertificateV2,
    KeyInfo signed as a third reference)."""
    ecdsa = isinstance(credential.key, ec.EllipticCurvePrivateKey)
    signer = XAdESSigner(signature_algorithm=SignatureMethod.ECDSA_SHA256 if ecdsa
                         else SignatureMethod.RSA_SHA256,
                         digest_algorithm=DigestAlgorithm.SHA256)
    signed = signer.sign(etree.fromstring(xml.encode()), key=credential.key_pem.encode(),
                         cert=credential.certificate_pem)
    return bytes(etree.tostring(signed))


def resign(signed: bytes, credential: MintedCredential, *, der_ecdsa: bool = False) -> bytes:
    """Recompute SignatureValue over the (edited) SignedInfo with the credential's key
    (`der_ecdsa`: an ASN.1 DER ECDSA value instead of the R||S XMLDSig requires)."""
    root = etree.fromstring(signed)
    info = root.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo")
    data = etree.tostring(info, method="c14n", exclusive=True)
    key = credential.key
    if isinstance(key, rsa.RSAPrivateKey):
        value = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        der = key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        value = der if der_ecdsa else r.to_bytes(32, "big") + s.to_bytes(32, "big")
    node = root.find(f"{{{DS}}}Signature/{{{DS}}}SignatureValue")
    node.text = base64.b64encode(value).decode()
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


@dataclass
class XadesAttempt:
    http_status: int
    body: Any  # the 202 answer or the 400 error
    status: dict[str, Any] | None = None  # GET /auth/{ref} status when started

    @property
    def exception_code(self) -> int:
        return int(self.body["exception"]["exceptionDetailList"][0]["exceptionCode"])

    @property
    def exception_details(self) -> list[str]:
        return list(self.body["exception"]["exceptionDetailList"][0]["details"] or [])


async def challenge(client: ReferenceClient) -> str:
    return str((await client.call("POST", "/auth/challenge"))["challenge"])


async def submit(client: ReferenceClient, document: bytes, query: str = "") -> XadesAttempt:
    """POST the signed document; when accepted, also read the operation's status."""
    async with client.http.post(f"{client.api}/auth/xades-signature{query}", data=document,
                                headers={"Content-Type": "application/xml"}) as resp:
        body = await resp.json(content_type=None)
        attempt = XadesAttempt(resp.status, body)
    if resp.status == 202:
        operation = body["authenticationToken"]["token"]
        status = await client.call("GET", f"/auth/{body['referenceNumber']}", token=operation)
        attempt.status = status
    return attempt


async def login(client: ReferenceClient, nip: str, credential: MintedCredential,
                subject_type: str = "certificateSubject") -> dict[str, Any]:
    """Challenge -> signed request -> status 200 -> redeem; returns the token pair."""
    document = sign(auth_request(await challenge(client), nip, subject_type), credential)
    attempt = await submit(client, document)
    assert attempt.http_status == 202, attempt.body
    assert attempt.status is not None and attempt.status["status"]["code"] == 200, attempt.status
    operation = attempt.body["authenticationToken"]["token"]
    tokens: dict[str, Any] = await client.call("POST", "/auth/token/redeem", token=operation)
    return tokens
