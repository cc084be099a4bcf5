"""`ksef-pipeline credentials enroll|revoke`: KSeF certificates for a context.

Enrollment, step by step, each printed: log in with a certificate (the context's
configured one, or `--auth-cert/--auth-key`, e.g. a qualified seal: KSeF refuses to
enroll for a token login), fetch the enrollment data, make the key here (written 0600
before the CSR leaves, so an issued certificate never lacks its key), send the CSR,
wait for the certificate, write it, and for an `Authentication` certificate point the
context's credentials-file entry at it (atomic replace: running workers re-read it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from pipeline.credentials.writing import set_certificate_entry, write_atomic, write_secret
from pipeline.ksef.credentials import (
    CertificateCredential,
    CertificateInfo,
    parse_certificate,
    parse_private_key,
)
from pipeline.ksef.enrollment import build_csr, csr_base64, key_pem, new_key
from pipeline.ksef_api import KsefApiError, KsefClient, KsefError, default_limiter
from pipeline.ksef_api.certificates import CertificatesApi, EnrollmentStatus
from pipeline.ksef_api.link import KsefSettings
from pipeline.runtime.secret_files import read_file, read_password


class CommandError(Exception):
    """An operator-facing failure: printed as is, exit 1."""


def _login_credential(args: argparse.Namespace, settings: KsefSettings
                      ) -> CertificateCredential:
    """The certificate to log in with; a token cannot enroll or revoke in KSeF."""
    nip = args.nip
    if args.auth_cert or args.auth_key:
        if not (args.auth_cert and args.auth_key):
            raise CommandError("give both --auth-cert and --auth-key")
        password = (read_password(nip, Path(args.auth_key_password_file))
                    if args.auth_key_password_file else None)
        certificate = parse_certificate(
            nip, read_file(nip, Path(args.auth_cert), "certificate", secret=False),
            args.auth_cert)
        key = parse_private_key(
            nip, read_file(nip, Path(args.auth_key), "private key", secret=True), password,
            args.auth_key)
        return CertificateCredential(nip, certificate, key, source=args.auth_cert)
    from pipeline.credentials import CredentialStore

    credential = CredentialStore(settings.credentials_file, settings.tokens_file).get(nip)
    if credential is None:
        raise CommandError(f"context {nip} has no credentials: give --auth-cert/--auth-key "
                           "(e.g. the company's qualified seal)")
    if not isinstance(credential, CertificateCredential):
        raise CommandError(
            f"context {nip} authenticates with a KSeF token ({credential.source}); KSeF "
            "manages certificates only for a certificate login (a token login gets "
            "25001/25002): give --auth-cert/--auth-key, e.g. the company's qualified seal")
    return credential


def _client(settings: KsefSettings, credential: CertificateCredential) -> KsefClient:
    env = settings.environment()
    return KsefClient(env, credential.nip, credential=credential,
                      limiter=default_limiter(env, settings.time_scale))


def _out_dir(args: argparse.Namespace, settings: KsefSettings) -> Path:
    if args.out:
        return Path(args.out)
    offline_dir = os.environ.get("KSEF_OFFLINE_CERT_DIR")
    if args.kind == "Offline" and offline_dir:
        return Path(offline_dir)
    if settings.credentials_file:
        return Path(settings.credentials_file).parent
    raise CommandError("where to write the certificate? give --out DIR or set "
                       "KSEF_CREDENTIALS_FILE" + (" (or KSEF_OFFLINE_CERT_DIR)"
                                                  if args.kind == "Offline" else ""))


def _progress(status: EnrollmentStatus, waited: float) -> None:
    print(f"      enrollment status {status.code} {status.description} "
          f"({waited:.1f} s)", flush=True)


def _say(text: str) -> None:
    print(text, flush=True)


async def enroll(args: argparse.Namespace) -> int:
    try:
        return await _enroll(args)
    except (CommandError, KsefError, ValueError) as exc:
        print(f"credentials enroll: {exc}", file=sys.stderr)
        return 1


async def _enroll(args: argparse.Namespace) -> int:
    settings = KsefSettings.from_env()
    nip, kind = args.nip, args.kind
    out = _out_dir(args, settings)
    login = _login_credential(args, settings)
    env = settings.environment()
    _say(f"[1/6] logging in to {env.name} ({env.api_url}) as context {nip} with "
         f"{login.info.subject} ({login.source})")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    name = args.name or f"ksef-pipeline {nip} {kind} {stamp}"
    async with _client(settings, login) as client:
        await client.authenticate()
        api = CertificatesApi(client)
        limits = await api.limits()
        if not limits.can_request:
            raise CommandError(
                f"KSeF allows no enrollment for this subject now (enrollments left "
                f"{limits.enrollments_remaining}, certificates left "
                f"{limits.certificates_remaining}): revoke an unused certificate first")
        data = await api.enrollment_data()
        key = new_key(args.key_type)
        csr = build_csr(data, key)
        _say(f"[2/6] enrollment data: subject {csr.subject.rfc4514_string()} (enrollments "
             f"left {limits.enrollments_remaining}, certificates left "
             f"{limits.certificates_remaining})")
        stem = f"{nip}" if kind == "Offline" else f"{nip}-auth-{stamp}"
        pending = out / f"{stem}.key.pending"
        write_secret(pending, key_pem(key))
        _say(f"[3/6] {args.key_type.upper()} key made here: {pending} (0600)")
        reference = None
        try:
            reference = await api.enroll(name, kind, csr_base64(csr))
            _say(f"[4/6] CSR sent: enrollment {reference} ({kind}, name {name!r}); waiting")
            serial = await api.wait_issued(reference, timeout=args.timeout,
                                           progress=_progress)
            certificate = await api.retrieve(serial)
        except KsefError as exc:
            _keep_or_drop(pending, reference, exc)
            raise
    info = CertificateInfo.of(certificate)
    cert_path, key_path = out / f"{stem}.crt", out / f"{stem}.key"
    from cryptography.hazmat.primitives.serialization import Encoding

    write_atomic(cert_path, certificate.public_bytes(Encoding.PEM), 0o644)
    os.replace(pending, key_path)
    _say(f"[5/6] issued: serial {serial}, valid {info.not_before:%Y-%m-%d %H:%M} to "
         f"{info.not_after:%Y-%m-%d %H:%M} UTC; certificate {cert_path}, key {key_path}")
    if kind == "Offline":
        _wire_offline(cert_path)
        return 0
    try:
        _wire_authentication(settings, nip, cert_path, key_path)
    except (OSError, ValueError) as exc:
        print(f"credentials enroll: the certificate is issued and written, but the "
              f"credentials file could not be updated ({exc}): add "
              f'"{nip}": {{"certificate": "{cert_path}", "private_key": "{key_path}"}}',
              file=sys.stderr)
        return 1
    return 0


def _keep_or_drop(pending: Path, reference: str | None, error: KsefError) -> None:
    """A refused request leaves a useless key (dropped); after a timeout or an outage
    KSeF may still issue the certificate, so its key is kept, with what to do."""
    refused = isinstance(error, KsefApiError) and error.code not in (None, 100)
    if reference is None or refused:
        pending.unlink(missing_ok=True)
        return
    print(f"credentials enroll: enrollment {reference} may still be issued; its key stays "
          f"in {pending} (rename it to .key next to the certificate if it is)",
          file=sys.stderr)


def _wire_authentication(settings: KsefSettings, nip: str, cert: Path, key: Path) -> None:
    if not settings.credentials_file:
        _say("[6/6] KSEF_CREDENTIALS_FILE is not set: add to it "
             f'"{nip}": {{"certificate": "{cert}", "private_key": "{key}"}}')
        return
    path = Path(settings.credentials_file)
    previous = set_certificate_entry(path, nip, cert, key)
    was = ", ".join(f"{k}" for k in previous) or "no entry"
    _say(f"[6/6] {path}: context {nip} now authenticates with this certificate "
         f"(was: {was}); running workers pick it up on their next call")
    if {"token", "token_file"} & set(previous) or os.environ.get(f"KSEF_TOKEN_{nip}"):
        _say("      its KSeF token is no longer used by this file's entry: run "
             "`ksef-pipeline credentials check`, then remove the token")


def _wire_offline(cert: Path) -> None:
    offline_dir = os.environ.get("KSEF_OFFLINE_CERT_DIR")
    here = cert.parent.resolve()
    if offline_dir and Path(offline_dir).resolve() == here:
        _say(f"[6/6] KOD II: KSEF_OFFLINE_CERT_DIR={offline_dir} holds it; the sealing "
             "stage reads <NIP>.crt/.key at worker start: restart the workers")
    else:
        _say(f"[6/6] KOD II: set KSEF_OFFLINE_CERT_DIR={here} (the sealing stage signs "
             "offline invoices' KOD II with <NIP>.crt/.key from there) and restart the "
             "workers")


async def revoke(args: argparse.Namespace) -> int:
    try:
        settings = KsefSettings.from_env()
        login = _login_credential(args, settings)
        serial = args.serial.upper()
        _say(f"revoking certificate {serial} of context {args.nip} (reason {args.reason}), "
             f"logged in with {login.info.subject}")
        async with _client(settings, login) as client:
            await CertificatesApi(client).revoke(serial, args.reason)
    except (CommandError, KsefError, ValueError) as exc:
        print(f"credentials revoke: {exc}", file=sys.stderr)
        return 1
    _say(f"revoked {serial}: KSeF refuses logins with it from now on")
    return 0
