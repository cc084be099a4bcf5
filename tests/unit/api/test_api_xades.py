"""The signed AuthTokenRequest: valid against KSeF's auth XSD, and a XAdES-BES signature
that an independent implementation (signxml, and raw `cryptography` for ECDSA R||S)
verifies, for RSA and ECDSA P-256 keys."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree
from signxml import InvalidSignature as XmlInvalidSignature
from signxml.xades import XAdESVerifier

from pipeline.ksef.credentials import CertificateCredential
from pipeline.ksef.selfsigned import mint_test_certificate
from pipeline.ksef_api.errors import KsefCredentialError
from pipeline.ksef_api.xades import (
    AUTH_NAMESPACES,
    DSIG_NS,
    XADES_NS,
    auth_token_request,
    sign_enveloped,
    signed_auth_token_request,
)
from tests.unit.emulator import contract

NIP = "5265877635"
CHALLENGE = "20250604-CR-461EA5B000-537A6BA15D-D7"
NS = {"ds": DSIG_NS, "xades": XADES_NS}
# podpis-xades.md: the transforms and canonicalizations KSeF accepts
ACCEPTED_TRANSFORMS = {
    "http://www.w3.org/TR/1999/REC-xpath-19991116",
    "http://www.w3.org/2002/06/xmldsig-filter2",
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2000/09/xmldsig#base64",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
}
AUTH_XSD = contract.DOCS / "auth/schemy"


def credential(key: str, subject_type: str = "certificateSubject") -> CertificateCredential:
    minted = mint_test_certificate(NIP, key=key)  # type: ignore[arg-type]
    return CertificateCredential(NIP, minted.certificate, minted.private_key,
                                 subject_type)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["rsa", "ec"])
def signer(request: pytest.FixtureRequest) -> CertificateCredential:
    return credential(request.param)


def auth_schema(version: str) -> etree.XMLSchema:
    """KSeF's auth XSD. Version 2.0's IP-address patterns (of AuthorizationPolicy, which
    we never send) are not XSD regular expressions, so libxml2 cannot compile them (2.1
    fixed exactly that): they are dropped from 2.0 in memory, the rest is checked as is."""
    tree = etree.parse(str(AUTH_XSD / f"schemat_auth_v{version.replace('.', '-')}.xsd"))
    if version == "2.0":
        xs = "http://www.w3.org/2001/XMLSchema"
        for element in tree.iterfind(f".//{{{xs}}}element"):
            if (element.get("name") or "").startswith("Ip4"):
                for pattern in element.iterfind(f".//{{{xs}}}pattern"):
                    pattern.getparent().remove(pattern)
    return etree.XMLSchema(tree)


def cert_pem(c: CertificateCredential) -> bytes:
    return c.certificate.public_bytes(serialization.Encoding.PEM)


@pytest.mark.skipif(not AUTH_XSD.exists(), reason=f"auth XSDs not found at {AUTH_XSD}")
@pytest.mark.parametrize("version", sorted(AUTH_NAMESPACES))
@pytest.mark.parametrize("subject_type", ["certificateSubject", "certificateFingerprint"])
def test_auth_token_request_is_valid_against_the_auth_xsd(version: str,
                                                          subject_type: str) -> None:
    xsd = auth_schema(version)
    document = auth_token_request(CHALLENGE, NIP, subject_type, schema_version=version)
    xsd.assertValid(etree.fromstring(document))
    assert not xsd.validate(etree.fromstring(  # the schema does check: a bad NIP fails
        auth_token_request(CHALLENGE, "0123456789", subject_type, schema_version=version)))
    # and the signed one is the same document plus its ds:Signature
    signed = etree.fromstring(sign_enveloped(document, credential("ec", subject_type)))
    signature = signed.find("ds:Signature", NS)
    assert signature is not None
    signed.remove(signature)
    xsd.assertValid(signed)
    assert signed.findtext(f"{{{AUTH_NAMESPACES[version]}}}ContextIdentifier/"
                           f"{{{AUTH_NAMESPACES[version]}}}Nip") == NIP


def test_signature_verifies_under_signxml(signer: CertificateCredential) -> None:
    signed = signed_auth_token_request(CHALLENGE, signer)
    results = XAdESVerifier().verify(signed, x509_cert=cert_pem(signer), expect_references=2)
    document = etree.fromstring(results[0].signed_data)
    assert document.tag == f"{{{AUTH_NAMESPACES['2.1']}}}AuthTokenRequest"
    assert document.findtext(f"{{{AUTH_NAMESPACES['2.1']}}}Challenge") == CHALLENGE
    assert document.find("ds:Signature", NS) is None  # enveloped: the signature excluded


def test_algorithms_and_transforms_are_the_ones_ksef_documents(
        signer: CertificateCredential) -> None:
    root = etree.fromstring(signed_auth_token_request(CHALLENGE, signer))
    signature = root.find("ds:Signature", NS)
    assert signature is not None and signature.getparent() is root  # enveloped
    method = signature.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm")
    value = base64.b64decode(signature.findtext("ds:SignatureValue", namespaces=NS))
    if isinstance(signer.private_key, ec.EllipticCurvePrivateKey):
        assert method == "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
        assert len(value) == 64  # R||S, 32 bytes each, not DER
    else:
        assert method == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
        assert len(value) == 256
    transforms = {t.get("Algorithm") for t in signature.iterfind(".//ds:Transform", NS)}
    transforms |= {c.get("Algorithm")
                   for c in signature.iterfind(".//ds:CanonicalizationMethod", NS)}
    assert transforms <= ACCEPTED_TRANSFORMS
    references = signature.findall("ds:SignedInfo/ds:Reference", NS)
    assert [r.get("URI") for r in references] == ["", "#SignedProperties"]
    assert references[1].get("Type") == "http://uri.etsi.org/01903#SignedProperties"


def test_ecdsa_value_is_r_concatenated_with_s_over_signed_info() -> None:
    """Checked with `cryptography` alone: the value is the XMLDSig 1.1 fixed-field form."""
    signer = credential("ec")
    root = etree.fromstring(signed_auth_token_request(CHALLENGE, signer))
    signed_info = root.find("ds:Signature/ds:SignedInfo", NS)
    c14n = etree.tostring(signed_info, method="c14n", exclusive=True)
    value = base64.b64decode(root.findtext("ds:Signature/ds:SignatureValue", namespaces=NS))
    r, s = int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big")
    public = signer.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(encode_dss_signature(r, s), c14n, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(encode_dss_signature(r, s), c14n + b" ", ec.ECDSA(hashes.SHA256()))


def test_signed_properties_name_the_certificate(signer: CertificateCredential) -> None:
    root = etree.fromstring(signed_auth_token_request(CHALLENGE, signer))
    props = root.find("ds:Signature/ds:Object/xades:QualifyingProperties/"
                      "xades:SignedProperties/xades:SignedSignatureProperties", NS)
    assert props is not None
    cert = props.find("xades:SigningCertificate/xades:Cert", NS)
    assert cert.find("xades:CertDigest/ds:DigestMethod", NS).get("Algorithm") == \
        "http://www.w3.org/2001/04/xmlenc#sha256"
    der = signer.certificate.public_bytes(serialization.Encoding.DER)
    assert cert.findtext("xades:CertDigest/ds:DigestValue", namespaces=NS) == \
        base64.b64encode(hashlib.sha256(der).digest()).decode()
    assert int(cert.findtext("xades:IssuerSerial/ds:X509SerialNumber", namespaces=NS)) == \
        signer.certificate.serial_number
    signing_time = dt.datetime.fromisoformat(props.findtext("xades:SigningTime",
                                                            namespaces=NS))
    assert abs(dt.datetime.now(dt.UTC) - signing_time) < dt.timedelta(minutes=5)
    embedded = root.findtext("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate",
                             namespaces=NS)
    assert base64.b64decode("".join(embedded.split())) == der


def test_tampering_or_another_key_fails_verification() -> None:
    signer, stranger = credential("ec"), credential("ec")
    signed = signed_auth_token_request(CHALLENGE, signer)
    tampered = signed.replace(NIP.encode(), b"7010002137")
    with pytest.raises(XmlInvalidSignature):
        XAdESVerifier().verify(tampered, x509_cert=cert_pem(signer), expect_references=2)
    with pytest.raises(XmlInvalidSignature):
        XAdESVerifier().verify(signed, x509_cert=cert_pem(stranger), expect_references=2)


def test_signing_failure_never_shows_key_material() -> None:
    signer = credential("rsa")
    with pytest.raises(KsefCredentialError) as caught:
        sign_enveloped(b"<not-xml", signer)
    assert "PRIVATE" not in str(caught.value)
