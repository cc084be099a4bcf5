"""`emulator-ctl` credential commands: a minted certificate and key, grants, revocation
and the certificate clock against a running emulator."""

from __future__ import annotations

import argparse
import asyncio
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from pipeline.cli import emulator_ctl
from pipeline.demo.samples import seller_nips
from pipeline.emulator import RunningEmulator
from pipeline.emulator.reference_client import ReferenceClient
from pipeline.emulator.selfsigned import MintedCredential
from tests.unit.emulator.conftest import ADMIN_TOKEN
from tests.unit.emulator.xades_support import auth_request, challenge, login, sign, submit

NIP, CONTEXT = seller_nips(2, seed=81)


def ctl(*argv: str) -> tuple[int, argparse.Namespace]:
    parser = argparse.ArgumentParser()
    emulator_ctl.configure(parser)
    args = parser.parse_args(list(argv))
    return emulator_ctl.run(args), args


def minted(directory: Path, capsys: pytest.CaptureFixture[str], *argv: str,
           ) -> tuple[MintedCredential, dict[str, str]]:
    code, _ = ctl("mint-cert", NIP, "--out", str(directory), *argv)
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    key = load_pem_private_key(Path(printed["privateKey"]).read_bytes(), None)
    cert = x509.load_pem_x509_certificate(Path(printed["certificate"]).read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return MintedCredential(key, cert), printed


def test_mint_cert_writes_a_private_key_only_the_owner_reads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    credential, printed = minted(tmp_path, capsys, "--key-type", "rsa", "--shape", "person")
    assert stat.S_IMODE(Path(printed["privateKey"]).stat().st_mode) == 0o600
    assert isinstance(credential.key, rsa.RSAPrivateKey) and credential.key.key_size == 2048
    subject = credential.certificate.subject
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == f"TINPL-{NIP}"
    assert printed["serial"] == credential.serial_hex
    Path(printed["privateKey"]).chmod(0o644)  # a re-mint replaces a loose file
    minted(tmp_path, capsys)
    assert stat.S_IMODE(Path(printed["privateKey"]).stat().st_mode) == 0o600


def test_mint_cert_refuses_an_invalid_nip(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = ctl("mint-cert", "1234567890")
    assert code == 2
    assert "not a valid NIP" in capsys.readouterr().err


async def test_grant_revoke_and_clock_drive_a_running_emulator(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], emulator: RunningEmulator,
        client: ReferenceClient) -> None:
    credential, _ = minted(tmp_path, capsys, "--key-type", "ec")
    url = emulator.base_url
    token_file = tmp_path / "admin-token"
    token_file.write_text(f"{ADMIN_TOKEN}\n")
    token_file.chmod(0o600)

    async def run(*argv: str) -> int:
        code, _ = await asyncio.to_thread(ctl, "--url", url, "--admin-token-file",
                                          str(token_file), *argv)
        return code

    refused = await submit(client, sign(auth_request(await challenge(client), CONTEXT),
                                        credential))
    assert refused.status is not None and refused.status["status"]["code"] == 415
    assert await run("grant", NIP, "--context", CONTEXT) == 0
    await login(client, CONTEXT, credential)
    assert await run("clock", "--offset-seconds", str(400 * 86400)) == 0
    later = await submit(client, sign(auth_request(await challenge(client), NIP), credential))
    assert later.status is not None and later.status["status"]["details"][0] == (
        "Nieważny certyfikat")
    assert await run("clock") == 0
    assert await run("revoke-cert", credential.serial_hex) == 0
    revoked = await submit(client, sign(auth_request(await challenge(client), NIP), credential))
    assert revoked.status is not None and revoked.status["status"]["details"][0] == (
        "Certyfikat odwołany")
