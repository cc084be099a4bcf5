"""Cryptographic check of a XAdES-signed `AuthTokenRequest` (`POST /auth/xades-signature`).

Verified with signxml (pure Python over lxml c14n + `cryptography`) on purpose: the
pipeline signs with `ksef-client`'s xmlsec (libxmlsec1) signer, so a mistake in either
implementation shows up as a refusal instead of being shared by signer and verifier.
signxml also does the parts that are easy to get subtly wrong by hand: every c14n
variant, ECDSA `R||S` values, XAdES `SigningCertificate(V2)/CertDigest`, and it returns
only the signed bytes, which is where the challenge, context and subject type are read.

What is refused here (synchronous 400, as KSeF's OpenAPI lists for this endpoint):
unreadable XML (21001), a document that is not an `AuthTokenRequest` (21401), no signature
(9102), more than one (9103), no usable certificate in `KeyInfo` (21115), and every
signature fault (9105): a reference outside the document (detached) or not covering the
whole document, a digest mismatch, a signature value that the certificate's key does not
verify, a weak key, an algorithm KSeF does not accept, a `CertDigest` of another
certificate. Certificate validity, revocation and permissions are judged afterwards by
the caller, because KSeF reports those as statuses of the authentication operation.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidInput, SignXMLException
from signxml.xades.xades import XAdESSignatureConfiguration, XAdESVerifier

from pipeline.emulator.errors import (
    INVALID_CERTIFICATE,
    INVALID_SIGNATURE,
    NO_SIGNATURE,
    NOT_SCHEMA_VALID,
    TOO_MANY_SIGNATURES,
    UNREADABLE,
)

DS = "http://www.w3.org/2000/09/xmldsig#"
AUTH_NAMESPACES = ("http://ksef.mf.gov.pl/auth/token/2.0", "http://ksef.mf.gov.pl/auth/token/2.1")
SUBJECT_TYPES = ("certificateSubject", "certificateFingerprint")
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_CHALLENGE = re.compile(r"^\d{8}-CR-[A-F0-9]{10}-[A-F0-9]{10}-[A-F0-9]{2}$")

# KSeF's list (auth/podpis-xades.md) without the SHA-1 methods signxml refuses by default
SIGNATURE_METHODS = frozenset({
    SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512,
    SignatureMethod.SHA256_RSA_MGF1, SignatureMethod.SHA384_RSA_MGF1,
    SignatureMethod.SHA512_RSA_MGF1, SignatureMethod.SHA3_256_RSA_MGF1,
    SignatureMethod.SHA3_384_RSA_MGF1, SignatureMethod.SHA3_512_RSA_MGF1,
    SignatureMethod.ECDSA_SHA256, SignatureMethod.ECDSA_SHA384, SignatureMethod.ECDSA_SHA512,
    SignatureMethod.ECDSA_SHA3_256, SignatureMethod.ECDSA_SHA3_384,
    SignatureMethod.ECDSA_SHA3_512,
})
DIGESTS = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512,
                     DigestAlgorithm.SHA3_256, DigestAlgorithm.SHA3_384,
                     DigestAlgorithm.SHA3_512})


class XadesRefusal(Exception):
    """A request refused before an authentication operation exists (HTTP 400)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class SignedAuthRequest:
    """What the signature covers, and the certificate that made it."""

    challenge: str
    context_nip: str
    subject_type: str
    certificate: x509.Certificate


def _parse(body: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_blank_text=False)
    try:
        return etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise XadesRefusal(UNREADABLE, f"the body is not well-formed XML: {exc}") from exc


def _signature(root: etree._Element) -> etree._Element:
    if root.tag == f"{{{DS}}}Signature":
        raise XadesRefusal(INVALID_SIGNATURE, "the emulator accepts enveloped signatures only "
                           "(ds:Signature as the last child of AuthTokenRequest)")
    found = root.findall(f".//{{{DS}}}Signature")
    if not found:
        raise XadesRefusal(NO_SIGNATURE, "the document carries no ds:Signature")
    if len(found) > 1:
        raise XadesRefusal(TOO_MANY_SIGNATURES, f"the document carries {len(found)} "
                           "ds:Signature elements; exactly one is allowed")
    signature = found[0]
    if signature.getparent() is not root:
        raise XadesRefusal(INVALID_SIGNATURE, "ds:Signature must be a child of AuthTokenRequest")
    return signature


def _certificate(signature: etree._Element) -> x509.Certificate:
    node = signature.find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    if node is None or not (node.text or "").strip():
        raise XadesRefusal(INVALID_CERTIFICATE, "KeyInfo/X509Data carries no X509Certificate")
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(node.text.split())))
    except (ValueError, binascii.Error) as exc:
        raise XadesRefusal(INVALID_CERTIFICATE,
                           f"X509Certificate is not a DER certificate: {exc}") from exc


def _check_key(certificate: x509.Certificate) -> None:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise XadesRefusal(INVALID_SIGNATURE,
                               f"RSA key of {key.key_size} bits; at least 2048 are required")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < 256:
            raise XadesRefusal(INVALID_SIGNATURE, f"curve {key.curve.name} is under 256 bits")
    else:
        raise XadesRefusal(INVALID_SIGNATURE, f"unsupported key type {type(key).__name__}")


def _check_references(signature: etree._Element) -> None:
    """One reference to the whole document (enveloped); the rest to parts of the signature
    itself (SignedProperties, KeyInfo). Anything else is a detached or partial signature."""
    own_ids = {node.get("Id") for node in signature.iter() if node.get("Id")}
    whole = 0
    for ref in signature.iterfind(f"{{{DS}}}SignedInfo/{{{DS}}}Reference"):
        uri = ref.get("URI")
        if uri == "":
            transforms = [t.get("Algorithm") for t in ref.iterfind(f"{{{DS}}}Transforms/"
                                                                    f"{{{DS}}}Transform")]
            if ENVELOPED not in transforms:
                raise XadesRefusal(INVALID_SIGNATURE, "the reference to the document lacks the "
                                   "enveloped-signature transform")
            whole += 1
        elif uri is not None and uri.startswith("#") and uri[1:] in own_ids:
            continue
        elif uri is None or not uri.startswith("#"):
            raise XadesRefusal(INVALID_SIGNATURE, f"reference URI {uri!r} points outside the "
                               "document: detached signatures are not accepted")
        else:
            raise XadesRefusal(INVALID_SIGNATURE, f"reference {uri!r} covers only part of the "
                               "document; the signature must cover the whole AuthTokenRequest")
    if whole != 1:
        raise XadesRefusal(INVALID_SIGNATURE, f"{whole} references to the whole document "
                           "(URI=\"\"); exactly one is required")


def _text(root: etree._Element, ns: str, path: str) -> str:
    node = root.find("/".join(f"{{{ns}}}{step}" for step in path.split("/")))
    if node is None or not (node.text or "").strip():
        raise XadesRefusal(NOT_SCHEMA_VALID, f"AuthTokenRequest lacks {path}")
    return str(node.text).strip()


def _fields(signed: etree._Element) -> tuple[str, str, str]:
    """Challenge, context NIP and subject type, read from the signed bytes only."""
    ns = etree.QName(signed).namespace or ""
    if etree.QName(signed).localname != "AuthTokenRequest" or ns not in AUTH_NAMESPACES:
        raise XadesRefusal(NOT_SCHEMA_VALID, f"the root element is {signed.tag}, not "
                           "AuthTokenRequest of the auth/token 2.0 or 2.1 namespace")
    challenge = _text(signed, ns, "Challenge")
    if not _CHALLENGE.match(challenge):
        raise XadesRefusal(NOT_SCHEMA_VALID, f"Challenge {challenge!r} has the wrong format")
    context = signed.find(f"{{{ns}}}ContextIdentifier")
    if context is None or len(context) != 1:
        raise XadesRefusal(NOT_SCHEMA_VALID, "ContextIdentifier must hold exactly one identifier")
    kind = etree.QName(context[0]).localname
    if kind != "Nip":
        raise XadesRefusal(NOT_SCHEMA_VALID, f"ContextIdentifier/{kind} is not supported by the "
                           "emulator (Nip only)")
    subject_type = _text(signed, ns, "SubjectIdentifierType")
    if subject_type not in SUBJECT_TYPES:
        raise XadesRefusal(NOT_SCHEMA_VALID, f"SubjectIdentifierType {subject_type!r} is not "
                           f"one of {SUBJECT_TYPES}")
    return challenge, _text(signed, ns, "ContextIdentifier/Nip"), subject_type


def verify_auth_request(body: bytes) -> SignedAuthRequest:
    """The signed content of an enveloped XAdES `AuthTokenRequest`; XadesRefusal otherwise.

    Certificate validity dates are not judged here (signxml is told to check them at the
    certificate's own start), so the caller can report them as KSeF's status 460.
    """
    root = _parse(body)
    if etree.QName(root).localname not in ("AuthTokenRequest", "Signature"):
        raise XadesRefusal(NOT_SCHEMA_VALID, f"the root element is {root.tag}, not "
                           "AuthTokenRequest")
    signature = _signature(root)
    certificate = _certificate(signature)
    _check_key(certificate)
    _check_references(signature)
    config = XAdESSignatureConfiguration(
        location="./", expect_references=True, signature_methods=SIGNATURE_METHODS,
        digest_algorithms=DIGESTS, verification_time=certificate.not_valid_before_utc)
    try:
        results = XAdESVerifier().verify(body, x509_cert=certificate, expect_config=config)
    except InvalidCertificate as exc:
        raise XadesRefusal(INVALID_CERTIFICATE, str(exc)) from exc
    except (SignXMLException, InvalidInput, ValueError) as exc:
        raise XadesRefusal(INVALID_SIGNATURE, f"{type(exc).__name__}: {exc}") from exc
    documents = [r.signed_xml for r in results if r.signed_xml is not None
                 and etree.QName(r.signed_xml).localname == "AuthTokenRequest"]
    if len(documents) != 1:
        raise XadesRefusal(INVALID_SIGNATURE, "the signature does not cover AuthTokenRequest")
    challenge, nip, subject_type = _fields(documents[0])
    return SignedAuthRequest(challenge, nip, subject_type, certificate)
