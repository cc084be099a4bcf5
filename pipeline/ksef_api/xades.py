"""The signed `AuthTokenRequest` of XAdES authentication (`POST /auth/xades-signature`).

Why the `ksef-client` SDK's signer (`ksef_client.services.xades.sign_xades_enveloped`,
over python-xmlsec / libxmlsec1) and not our own or signxml's:
- it makes exactly what KSeF documents (podpis-xades.md): an enveloped signature, the
  transforms `enveloped-signature` + `xml-exc-c14n#`, SHA-256 digests, `rsa-sha256` for
  RSA and `ecdsa-sha256` for EC keys with the value as R||S (libxmlsec1 converts
  OpenSSL's DER to the fixed-width XMLDSig 1.1 form: 64 bytes for P-256), and XAdES-BES
  SignedProperties with SigningTime and SigningCertificate (SHA-256 CertDigest +
  IssuerSerial), referenced from SignedInfo with the SignedProperties type;
- it is the signer the SDK maintainers test against KSeF TEST, and libxmlsec1 is a
  long-lived C implementation; xmlsec 1.3.17 and lxml 6.1.3 share libxml2 2.14.6 here,
  which python-xmlsec needs;
- signxml stays independent: the tests verify our signatures with signxml's verifier
  (another implementation, pure Python over `cryptography`), which a signature made
  by signxml itself could not prove.
What we add: the `AuthTokenRequest` document (built here, checked against the auth XSD
in tests), key checks (RSA >= 2048, EC >= 256 bits, key matches certificate) before
signing, and the key handed to the signer only in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from ksef_client.services.xades import sign_xades_enveloped
from lxml import etree  # type: ignore[import-untyped]

from pipeline.ksef_api.errors import KsefCredentialError

if TYPE_CHECKING:
    from pipeline.ksef.credentials import CertificateCredential

AUTH_NAMESPACES = {
    "2.0": "http://ksef.mf.gov.pl/auth/token/2.0",
    "2.1": "http://ksef.mf.gov.pl/auth/token/2.1",
}
AUTH_SCHEMA_VERSION = "2.1"  # accepted by KSeF since API 2.5.0; 2.0 still is
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


def auth_token_request(
    challenge: str,
    context_nip: str,
    subject_identifier_type: str = "certificateSubject",
    *,
    schema_version: str = AUTH_SCHEMA_VERSION,
) -> bytes:
    """The unsigned `AuthTokenRequest` (UTF-8 XML) for a NIP context."""
    ns = AUTH_NAMESPACES[schema_version]
    root = etree.Element(f"{{{ns}}}AuthTokenRequest", nsmap={None: ns})
    etree.SubElement(root, f"{{{ns}}}Challenge").text = challenge
    context = etree.SubElement(root, f"{{{ns}}}ContextIdentifier")
    etree.SubElement(context, f"{{{ns}}}Nip").text = context_nip
    etree.SubElement(root, f"{{{ns}}}SubjectIdentifierType").text = subject_identifier_type
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def sign_enveloped(document: bytes, credential: CertificateCredential) -> bytes:
    """`document` with an enveloped XAdES-BES signature by `credential`'s key."""
    certificate_pem = credential.certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = credential.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    try:
        signed = sign_xades_enveloped(document.decode("utf-8"), certificate_pem.decode(),
                                      key_pem.decode())
    except Exception as exc:  # xmlsec.Error, RuntimeError: never with key material
        raise KsefCredentialError(
            credential.nip, "invalid",
            f"XAdES signing failed ({type(exc).__name__}); check the key and certificate",
            path=credential.source or None) from None
    return signed.encode("utf-8")


def signed_auth_token_request(
    challenge: str, credential: CertificateCredential,
    *, schema_version: str = AUTH_SCHEMA_VERSION,
) -> bytes:
    """What `POST /auth/xades-signature` takes: the signed request of `credential`'s NIP."""
    document = auth_token_request(challenge, credential.nip,
                                  credential.subject_identifier_type,
                                  schema_version=schema_version)
    return sign_enveloped(document, credential)
