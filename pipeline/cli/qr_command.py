"""`ksef-pipeline qr`: KOD I (and KOD II) links and labelled images for an invoice file.

    ksef-pipeline qr INVOICE.xml --out DIR [--env test|demo|prod] [--ksef-number N]
        [--cert CERT --key KEY [--key-password-env VAR]
         [--context-type Nip|InternalId|NipVatUe|PeppolId] [--context-value V]]

Writes DIR/<stem>.kod1.{png,svg} (label: the KSeF number, or OFFLINE) and, with a KSeF
offline certificate, DIR/<stem>.kod2.{png,svg} (label CERTYFIKAT); prints one JSON line
with the links and files. The hash is over the file's exact bytes. Bad input -> stderr,
exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from pipeline.ksef.numbers import ksef_number_problem
from pipeline.ksef.qr import (
    CERTIFICATE_LABEL,
    CONTEXT_TYPES,
    QrEnvironment,
    QrError,
    certificate_link,
    certificate_serial,
    invoice_hash,
    invoice_link,
    kod1_label,
    load_certificate,
    load_signing_key,
)
from pipeline.ksef.qr_image import DEFAULT_SCALE, render_png, render_svg


def _local_path(*names: str) -> str:
    """Namespace-agnostic absolute XPath (FA(3) namespaces change between versions)."""
    return "".join(f"/*[local-name()='{name}']" for name in names)


_SELLER_NIP = _local_path("Faktura", "Podmiot1", "DaneIdentyfikacyjne", "NIP")
_ISSUE_DATE = _local_path("Faktura", "Fa", "P_1")


class InputError(Exception):
    """Bad command-line input; the message is shown as is."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("invoice", metavar="INVOICE.xml", help="FA(3) invoice file")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for the images")
    parser.add_argument("--env", default="test", help="QR host: test, demo or prod")
    parser.add_argument("--ksef-number", help="label KOD I with this KSeF number (else OFFLINE)")
    parser.add_argument("--cert", help="KSeF offline certificate (PEM or DER) for KOD II")
    parser.add_argument("--key", help="its private key (PEM or DER, RSA >= 2048 or EC P-256)")
    parser.add_argument(
        "--key-password-env", metavar="VAR", help="environment variable holding the key password"
    )
    parser.add_argument("--context-type", default="Nip", choices=CONTEXT_TYPES)
    parser.add_argument("--context-value", help="context identifier (default: the seller NIP)")
    parser.add_argument("--scale", type=int, default=DEFAULT_SCALE, help="pixels per module")


def read_invoice_identity(xml: bytes) -> tuple[str, dt.date]:
    """Seller NIP (Podmiot1) and issue date (P_1) from an FA(3) document."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise InputError(f"invoice is not well-formed XML: {exc}") from exc
    tree = root.getroottree()
    nips = tree.xpath(_SELLER_NIP)
    dates = tree.xpath(_ISSUE_DATE)
    if not isinstance(nips, list) or len(nips) != 1:
        raise InputError("invoice has no single Faktura/Podmiot1/DaneIdentyfikacyjne/NIP")
    if not isinstance(dates, list) or len(dates) != 1:
        raise InputError("invoice has no single Faktura/Fa/P_1 (issue date)")
    nip = (getattr(nips[0], "text", None) or "").strip()
    p1 = (getattr(dates[0], "text", None) or "").strip()
    try:
        issued = dt.date.fromisoformat(p1)
    except ValueError as exc:
        raise InputError(f"P_1 {p1!r} is not a date YYYY-MM-DD") from exc
    return nip, issued


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from exc


def _write_images(out: Path, stem: str, url: str, label: str, scale: int) -> dict[str, str]:
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    png.write_bytes(render_png(url, label, scale))
    svg.write_text(render_svg(url, label, scale), encoding="utf-8")
    return {"png": str(png), "svg": str(svg)}


def _kod2(args: argparse.Namespace, env: QrEnvironment, nip: str, hash_value: str) -> str:
    if not args.cert or not args.key:
        raise InputError("KOD II needs both --cert and --key")
    password = None
    if args.key_password_env:
        secret = os.environ.get(args.key_password_env)
        if secret is None:
            raise InputError(f"environment variable {args.key_password_env} is not set")
        password = secret.encode("utf-8")
    certificate = load_certificate(_read(args.cert, "certificate"))
    key = load_signing_key(_read(args.key, "private key"), password)
    link = certificate_link(
        env,
        context_type=args.context_type,
        context_value=args.context_value or nip,
        seller_nip=nip,
        certificate_serial_hex=certificate_serial(certificate),
        invoice_hash_value=hash_value,
        key=key,
    )
    if not link.verify(certificate):
        raise InputError("the private key does not belong to the certificate")
    return link.url


def build(args: argparse.Namespace) -> dict[str, Any]:
    env = QrEnvironment.parse(args.env)
    if args.ksef_number and (problem := ksef_number_problem(args.ksef_number)):
        raise InputError(f"--ksef-number {args.ksef_number}: {problem}")
    if args.scale < 1 or args.scale > 50:
        raise InputError("--scale must be between 1 and 50 pixels per module")
    xml = _read(args.invoice, "invoice")
    nip, issued = read_invoice_identity(xml)
    hash_value = invoice_hash(xml)
    kod1 = invoice_link(env, nip, issued, hash_value).url
    kod2 = _kod2(args, env, nip, hash_value) if (args.cert or args.key) else None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        stem = Path(args.invoice).stem
        label = kod1_label(args.ksef_number)
        result: dict[str, Any] = {
            "invoice": args.invoice,
            "seller_nip": nip,
            "issued": issued.isoformat(),
            "hash": hash_value,
            "kod1": {
                "url": kod1,
                "label": label,
                **_write_images(out, f"{stem}.kod1", kod1, label, args.scale),
            },
            "kod2": None,
        }
        if kod2 is not None:
            result["kod2"] = {
                "url": kod2,
                "label": CERTIFICATE_LABEL,
                **_write_images(out, f"{stem}.kod2", kod2, CERTIFICATE_LABEL, args.scale),
            }
    except OSError as exc:
        raise InputError(f"cannot write images to {out}: {exc}") from exc
    return result


def run(args: argparse.Namespace) -> int:
    try:
        result = build(args)
    except (InputError, QrError) as exc:
        print(f"ksef-pipeline qr: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0
