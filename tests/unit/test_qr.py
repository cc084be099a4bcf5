"""KOD I / KOD II links, their signatures, and the labelled images."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
from pathlib import Path
from typing import cast
from xml.etree import ElementTree

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from PIL import Image

from pipeline.cli.main import main
from pipeline.ksef.qr import (
    CertificateLink,
    QrEnvironment,
    QrError,
    certificate_link,
    certificate_serial,
    invoice_hash,
    invoice_link,
    kod1_label,
    load_certificate,
    load_signing_key,
    normalise_hash,
    parse_certificate_link,
    parse_invoice_link,
)
from pipeline.ksef.qr_image import QUIET_ZONE, qr_matrix, render_png, render_svg

DOC_HASH = "UtQp9Gpc51y-u3xApZjIjgkpZ01js-J8KflSPW8WzIE"
DOC_KOD1 = f"https://qr-test.ksef.mf.gov.pl/invoice/1111111111/01-02-2026/{DOC_HASH}"
DOC_SIGNED_TEXT = (
    f"qr-test.ksef.mf.gov.pl/certificate/Nip/1111111111/1111111111/01F20A5D352AE590/{DOC_HASH}"
)
SERIAL = 0x01F20A5D352AE590


def _certificate(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "offline test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(SERIAL)
        .not_valid_before(dt.datetime(2025, 1, 1))
        .not_valid_after(dt.datetime(2030, 1, 1))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _kod2(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> CertificateLink:
    return certificate_link(
        QrEnvironment.TEST,
        context_type="Nip",
        context_value="1111111111",
        seller_nip="1111111111",
        certificate_serial_hex="01F20A5D352AE590",
        invoice_hash_value=DOC_HASH,
        key=key,
    )


def _raw_signature(link: CertificateLink) -> bytes:
    return base64.urlsafe_b64decode(link.signature + "=" * (-len(link.signature) % 4))


# --- KOD I ----------------------------------------------------------------------------


def test_kod1_matches_the_documented_example() -> None:
    link = invoice_link(QrEnvironment.TEST, "1111111111", dt.date(2026, 2, 1), DOC_HASH)
    assert link.url == DOC_KOD1


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("test", "qr-test.ksef.mf.gov.pl"),
        ("demo", "qr-demo.ksef.mf.gov.pl"),
        ("prod", "qr.ksef.mf.gov.pl"),
        ("PRD", "qr.ksef.mf.gov.pl"),
        ("production", "qr.ksef.mf.gov.pl"),
    ],
)
def test_environment_hosts(name: str, host: str) -> None:
    env = QrEnvironment.parse(name)
    url = invoice_link(env, "1111111111", dt.date(2026, 2, 1), DOC_HASH).url
    assert url.startswith(f"https://{host}/invoice/")


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(QrError, match="unknown KSeF environment"):
        QrEnvironment.parse("staging")


def test_invoice_hash_is_base64url_sha256_of_the_exact_bytes() -> None:
    xml = b"<Faktura>\xc5\xbc</Faktura>"
    digest = hashlib.sha256(xml).digest()
    assert invoice_hash(xml) == base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_standard_base64_hash_is_converted_for_the_link() -> None:
    standard = base64.b64encode(base64.urlsafe_b64decode(DOC_HASH + "=")).decode()
    assert "+" in standard or "/" in standard or standard.endswith("=")
    assert normalise_hash(standard) == DOC_HASH
    with pytest.raises(QrError, match="32"):
        normalise_hash("AAAA")


def test_kod1_round_trips_through_parsing() -> None:
    parsed = parse_invoice_link(DOC_KOD1)
    assert (parsed.seller_nip, parsed.issued, parsed.invoice_hash) == (
        "1111111111",
        dt.date(2026, 2, 1),
        DOC_HASH,
    )
    assert parsed.url == DOC_KOD1


@pytest.mark.parametrize(
    "url",
    [
        DOC_KOD1.replace("https://", "http://"),
        DOC_KOD1.replace("qr-test.ksef", "qr-evil.ksef"),
        DOC_KOD1.replace("01-02-2026", "2026-02-01"),
        DOC_KOD1.replace("/invoice/", "/faktura/"),
        DOC_KOD1 + "/extra",
    ],
)
def test_malformed_kod1_links_are_refused(url: str) -> None:
    with pytest.raises(QrError):
        parse_invoice_link(url)


def test_kod1_label() -> None:
    assert kod1_label(None) == "OFFLINE"
    assert kod1_label("5265877635-20250826-0100001AF629-AF") == (
        "5265877635-20250826-0100001AF629-AF"
    )


# --- KOD II ---------------------------------------------------------------------------


def test_kod2_signs_the_documented_text(rsa_key: rsa.RSAPrivateKey) -> None:
    link = _kod2(rsa_key)
    assert link.signed_text == DOC_SIGNED_TEXT
    assert link.url == f"https://{DOC_SIGNED_TEXT}/{link.signature}"


def test_documented_kod2_link_parses() -> None:
    signature = "mSkm_XmM9fq7PgAJwiL32L9ujhyguOEV48cDB0ncemD2r9TMGa3lr0iRoFk588agCi8QPsOuscUY1r"
    parsed = parse_certificate_link(f"https://{DOC_SIGNED_TEXT}/{signature}")
    assert parsed.context_type == "Nip" and parsed.certificate_serial == "01F20A5D352AE590"
    assert parsed.signed_text == DOC_SIGNED_TEXT and parsed.signature == signature


def test_rsa_signature_is_pss_sha256_with_32_byte_salt(rsa_key: rsa.RSAPrivateKey) -> None:
    link = _kod2(rsa_key)
    raw = _raw_signature(link)
    assert len(raw) == 256
    data = DOC_SIGNED_TEXT.encode()
    public = rsa_key.public_key()
    pss32 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public.verify(raw, data, pss32, hashes.SHA256())  # raises if not PSS/SHA-256/salt 32
    pss20 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20)
    with pytest.raises(InvalidSignature):
        public.verify(raw, data, pss20, hashes.SHA256())
    assert link.verify(public) and link.verify(_certificate(rsa_key))


def test_ecdsa_signature_is_ieee_p1363(ec_key: ec.EllipticCurvePrivateKey) -> None:
    link = _kod2(ec_key)
    raw = _raw_signature(link)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    ec_key.public_key().verify(der, DOC_SIGNED_TEXT.encode(), ec.ECDSA(hashes.SHA256()))
    assert link.verify(ec_key.public_key())


def test_der_encoded_ecdsa_signature_is_also_accepted(ec_key: ec.EllipticCurvePrivateKey) -> None:
    der = ec_key.sign(DOC_SIGNED_TEXT.encode(), ec.ECDSA(hashes.SHA256()))
    signature = base64.urlsafe_b64encode(der).decode().rstrip("=")
    parsed = parse_certificate_link(f"https://{DOC_SIGNED_TEXT}/{signature}")
    assert parsed.verify(ec_key.public_key())


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_tampered_links_and_wrong_keys_fail_verification(
    kind: str, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    key = rsa_key if kind == "rsa" else ec_key
    link = _kod2(key)
    parsed = parse_certificate_link(link.url)
    assert parsed.verify(key.public_key())
    other_nip = parse_certificate_link(link.url.replace("/Nip/1111111111/", "/Nip/2222222222/"))
    assert not other_nip.verify(key.public_key())
    other = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else None
    if other is not None:
        assert not parsed.verify(other.public_key())
    else:
        assert not parsed.verify(ec_key.public_key())


@pytest.mark.parametrize(
    ("key_factory", "complaint"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "2048"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "P-256"),
    ],
)
def test_keys_ksef_does_not_accept_are_refused(key_factory: object, complaint: str) -> None:
    key = key_factory()  # type: ignore[operator]
    with pytest.raises(QrError, match=complaint):
        _kod2(key)


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("context_type", "Pesel", "context type"),
        ("context_value", "11/11", "context value"),
        ("seller_nip", "111111111", "10 digits"),
        ("certificate_serial_hex", "XYZ", "hexadecimal"),
    ],
)
def test_bad_kod2_parts_are_refused(
    field: str, value: str, complaint: str, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    parts = {
        "context_type": "Nip",
        "context_value": "1111111111",
        "seller_nip": "1111111111",
        "certificate_serial_hex": "01F20A5D352AE590",
    }
    parts[field] = value
    with pytest.raises(QrError, match=complaint):
        certificate_link(QrEnvironment.TEST, invoice_hash_value=DOC_HASH, key=ec_key, **parts)


def test_certificate_serial_format(ec_key: ec.EllipticCurvePrivateKey) -> None:
    assert certificate_serial(_certificate(ec_key)) == "01F20A5D352AE590"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ec_key.public_key())
        .not_valid_before(dt.datetime(2025, 1, 1))
        .not_valid_after(dt.datetime(2030, 1, 1))
    )
    small = builder.serial_number(0x1234).sign(ec_key, hashes.SHA256())
    assert certificate_serial(small) == "0000000000001234"
    long = builder.serial_number(0x7B << 144).sign(ec_key, hashes.SHA256())
    assert certificate_serial(long) == "7B" + "00" * 18


def test_keys_and_certificates_load_from_pem_der_and_encrypted_pem(
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    cert = _certificate(ec_key)
    for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
        assert load_certificate(cert.public_bytes(encoding)).serial_number == SERIAL
        raw = ec_key.private_bytes(
            encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        assert load_signing_key(raw).public_key() == ec_key.public_key()
    locked = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    assert load_signing_key(locked, b"s3cret").public_key() == ec_key.public_key()
    with pytest.raises(QrError, match="cannot load the private key"):
        load_signing_key(locked, b"wrong")
    with pytest.raises(QrError, match=r"not an X\.509 certificate"):
        load_certificate(b"garbage")


# --- images ---------------------------------------------------------------------------


def _darkest(image: Image.Image) -> int:
    low, _ = cast(tuple[int, int], image.convert("L").getextrema())
    return low


def _modules_from_png(png: bytes, modules: int, scale: int) -> list[list[bool]]:
    image = Image.open(io.BytesIO(png)).convert("L")
    code_size = (modules + 2 * QUIET_ZONE) * scale
    left = (image.width - code_size) // 2 + QUIET_ZONE * scale
    top = QUIET_ZONE * scale
    return [
        [
            image.getpixel((left + x * scale + scale // 2, top + y * scale + scale // 2)) == 0
            for x in range(modules)
        ]
        for y in range(modules)
    ]


@pytest.mark.parametrize("label", ["OFFLINE", "5265877635-20250826-0100001AF629-AF"])
def test_png_holds_exactly_the_symbol_and_a_label_below(label: str) -> None:
    matrix = qr_matrix(DOC_KOD1)
    png = render_png(DOC_KOD1, label, scale=4)
    read = _modules_from_png(png, len(matrix), 4)
    assert read == [list(row) for row in matrix]
    image = Image.open(io.BytesIO(png)).convert("L")
    code_bottom = (len(matrix) + 2 * QUIET_ZONE) * 4
    label_band = image.crop((0, code_bottom, image.width, image.height))
    assert _darkest(label_band) < 128  # some ink under the code
    assert png == render_png(DOC_KOD1, label, scale=4)  # deterministic


def test_long_label_widens_the_image_instead_of_clipping() -> None:
    short = Image.open(io.BytesIO(render_png(DOC_KOD1, "OFFLINE", scale=2)))
    long = Image.open(io.BytesIO(render_png(DOC_KOD1, "5265877635-20250826-0100001AF629-AF", 2)))
    assert long.width > short.width
    band = long.crop((0, long.height - 8, 8, long.height)).convert("L")
    assert _darkest(band) == 255  # margin left of the text stays white


def test_svg_has_one_square_per_dark_module_and_the_label_as_text() -> None:
    label = "A&B <OFFLINE>"
    svg = render_svg(DOC_KOD1, label)
    root = ElementTree.fromstring(svg.encode())
    ns = "{http://www.w3.org/2000/svg}"
    path = root.find(f"{ns}path")
    text = root.find(f"{ns}text")
    assert path is not None and text is not None
    dark = sum(cell for row in qr_matrix(DOC_KOD1) for cell in row)
    assert path.attrib["d"].count("M") == dark
    assert text.text == label
    assert float(text.attrib["y"]) > (len(qr_matrix(DOC_KOD1)) + 2 * QUIET_ZONE) * 5


# --- the `qr` command -----------------------------------------------------------------

INVOICE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Faktura xmlns="http://crd.gov.pl/wzor/2025/06/25/13775/"><Naglowek/>'
    "<Podmiot1><DaneIdentyfikacyjne><NIP>5265877635</NIP><Nazwa>Żuraw</Nazwa>"
    "</DaneIdentyfikacyjne></Podmiot1><Fa><KodWaluty>PLN</KodWaluty><P_1>2026-02-01</P_1>"
    "</Fa></Faktura>\n"
).encode()


@pytest.fixture
def files(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> dict[str, Path]:
    invoice = tmp_path / "fv-1.xml"
    invoice.write_bytes(INVOICE)
    cert = tmp_path / "offline.crt"
    cert.write_bytes(_certificate(ec_key).public_bytes(serialization.Encoding.PEM))
    key = tmp_path / "offline.key"
    key.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"invoice": invoice, "cert": cert, "key": key, "out": tmp_path / "out"}


def _run_qr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["qr", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_qr_command_writes_kod1_and_kod2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], ec_key: ec.EllipticCurvePrivateKey
) -> None:
    code, out, err = _run_qr(
        capsys, str(files["invoice"]), "--out", str(files["out"]), "--env", "demo",
        "--cert", str(files["cert"]), "--key", str(files["key"]),
    )  # fmt: skip
    assert code == 0, err
    assert len(out.splitlines()) == 1
    result = json.loads(out)
    expected_hash = invoice_hash(INVOICE)
    assert result["kod1"]["url"] == (
        f"https://qr-demo.ksef.mf.gov.pl/invoice/5265877635/01-02-2026/{expected_hash}"
    )
    assert result["kod1"]["label"] == "OFFLINE"
    kod2 = parse_certificate_link(result["kod2"]["url"])
    assert kod2.seller_nip == "5265877635" and kod2.context_value == "5265877635"
    assert kod2.certificate_serial == "01F20A5D352AE590"
    assert kod2.invoice_hash == expected_hash
    assert kod2.verify(_certificate(ec_key))
    assert result["kod2"]["label"] == "CERTYFIKAT"
    for kind in ("kod1", "kod2"):
        for fmt in ("png", "svg"):
            assert Path(result[kind][fmt]).stat().st_size > 0
    assert sorted(p.name for p in files["out"].iterdir()) == [
        "fv-1.kod1.png", "fv-1.kod1.svg", "fv-1.kod2.png", "fv-1.kod2.svg",
    ]  # fmt: skip


def test_qr_command_labels_kod1_with_the_ksef_number(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    number = "5265877635-20250826-0100001AF629-AF"
    code, out, _ = _run_qr(
        capsys, str(files["invoice"]), "--out", str(files["out"]), "--ksef-number", number
    )
    assert code == 0
    result = json.loads(out)
    assert result["kod1"]["label"] == number and result["kod2"] is None
    svg = Path(result["kod1"]["svg"]).read_text(encoding="utf-8")
    assert f">{number}</text>" in svg


def test_qr_command_reads_a_real_fa3_invoice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.demo.samples import make_invoice

    xml = make_invoice(seller_nip="5265877635", number="FV/7", issue_date=dt.date(2026, 3, 9))
    invoice = tmp_path / "real.xml"
    invoice.write_bytes(xml)
    code, out, err = _run_qr(capsys, str(invoice), "--out", str(tmp_path), "--env", "prod")
    assert code == 0, err
    assert json.loads(out)["kod1"]["url"] == (
        f"https://qr.ksef.mf.gov.pl/invoice/5265877635/09-03-2026/{invoice_hash(xml)}"
    )


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        (["--cert", "{cert}"], "needs both --cert and --key"),
        (["--ksef-number", "5265877635-20250826-0100001AF629-AE"], "checksum"),
        (["--env", "staging"], "unknown KSeF environment"),
        (["--cert", "{cert}", "--key", "{invoice}"], "cannot load the private key"),
        (["--key-password-env", "KSEF_TEST_UNSET_VAR", "--cert", "{cert}", "--key", "{key}"],
         "KSEF_TEST_UNSET_VAR"),
    ],
)  # fmt: skip
def test_qr_command_bad_input_exits_2(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    complaint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KSEF_TEST_UNSET_VAR", raising=False)
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in extra]
    code, out, err = _run_qr(capsys, str(files["invoice"]), "--out", str(files["out"]), *args)
    assert code == 2 and out == ""
    assert complaint in err


def test_qr_command_refuses_a_key_that_is_not_the_certificates(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], rsa_key: rsa.RSAPrivateKey
) -> None:
    other = files["key"].with_name("other.key")
    other.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    code, _, err = _run_qr(
        capsys, str(files["invoice"]), "--out", str(files["out"]),
        "--cert", str(files["cert"]), "--key", str(other),
    )  # fmt: skip
    assert code == 2 and "does not belong to the certificate" in err


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"<Faktura><Fa><P_1>2026-02-01</P_1></Fa></Faktura>", "Podmiot1"),
        (INVOICE.replace(b"<P_1>2026-02-01</P_1>", b""), "P_1"),
        (INVOICE.replace(b"2026-02-01", b"01.02.2026"), "not a date"),
        (b"not xml", "not well-formed"),
    ],
)
def test_qr_command_refuses_unusable_invoices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, complaint: str
) -> None:
    invoice = tmp_path / "bad.xml"
    invoice.write_bytes(content)
    code, _, err = _run_qr(capsys, str(invoice), "--out", str(tmp_path / "out"))
    assert code == 2 and complaint in err
