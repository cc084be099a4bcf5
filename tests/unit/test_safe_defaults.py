"""Fail-safe defaults (issue 16): KSEF_ENV explicit and the QR links following it, no
plain http to a remote KSeF, no SASL without TLS, no secret in a repr or a log line."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import logging.config
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from pipeline.ksef.keyring import Keyring
from pipeline.ksef.qr import QrEnvironment
from pipeline.ksef.selfsigned import mint_test_certificate
from pipeline.runtime.keyring_file import new_keyring_json

REPO = Path(__file__).resolve().parents[2]
NIP = "5265877635"
SECRET = "S3cr3t-Known-Value-0042"  # the secret every repr test plants


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("KSEF_ENV", "KSEF_QR_ENV", "KSEF_API_URL", "KSEF_ALLOW_HTTP_API",
                 "KSEF_KAFKA_ALLOW_PLAINTEXT_SASL", "KAFKA_SECURITY_PROTOCOL",
                 "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
                 "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_KEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _ksef_settings() -> Any:
    from pipeline.ksef_api.link import KsefSettings

    return KsefSettings.from_env()


def _qr(env: pytest.MonkeyPatch) -> QrEnvironment:
    from pipeline.runtime.settings import ValidateSealSettings
    from pipeline.stages.s1_validate_seal.sealing import SealConfig

    return SealConfig.build(Keyring.from_json(new_keyring_json()),
                            ValidateSealSettings.from_env()).qr_environment


# --- 1. KSEF_ENV explicit, QR links follow it, TLS off this host ---------------------------


def test_no_ksef_env_is_refused_naming_the_values(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError) as raised:
        _ksef_settings()
    message = str(raised.value)
    assert "KSEF_ENV" in message
    assert all(name in message for name in ("emulator", "test", "demo", "prod"))


def test_a_worker_without_ksef_env_refuses_to_start() -> None:
    environ = {k: v for k, v in os.environ.items() if k not in ("KSEF_ENV", "KSEF_QR_ENV")}
    environ.update(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", KSEF_TOPIC_REPLICATION="1",
                   KSEF_TOPIC_MIN_ISR="1", PYTHONPATH=str(REPO))
    started = time.monotonic()
    try:
        out = subprocess.run([sys.executable, "-m", "pipeline.cli", "worker",
                              "--web-port", "0"], cwd=REPO, env=environ,
                             capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker started (and kept running) without KSEF_ENV")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "KSEF_ENV is not set" in out.stderr
    assert "emulator, test, demo, prod" in out.stderr
    assert "Traceback" not in out.stderr
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(("ksef_env", "qr"), [
    ("prod", QrEnvironment.PROD), ("production", QrEnvironment.PROD),
    ("test", QrEnvironment.TEST), ("demo", QrEnvironment.DEMO),
    ("emulator", QrEnvironment.TEST),
])
def test_the_qr_environment_follows_ksef_env(env: pytest.MonkeyPatch, ksef_env: str,
                                             qr: QrEnvironment) -> None:
    env.setenv("KSEF_ENV", ksef_env)
    assert _qr(env) is qr


@pytest.mark.parametrize(("ksef_env", "qr_env"), [
    ("prod", "test"), ("prod", "demo"), ("test", "prod"), ("demo", "prod"),
    ("emulator", "prod"), ("test", "demo"),
])
def test_a_qr_environment_that_disagrees_is_refused(env: pytest.MonkeyPatch, ksef_env: str,
                                                    qr_env: str) -> None:
    env.setenv("KSEF_ENV", ksef_env)
    env.setenv("KSEF_QR_ENV", qr_env)
    with pytest.raises(ValueError, match="disagrees with KSEF_ENV"):
        _qr(env)


@pytest.mark.parametrize(("ksef_env", "qr_env", "qr"), [
    ("prod", "prd", QrEnvironment.PROD), ("test", "TEST", QrEnvironment.TEST),
    ("emulator", "demo", QrEnvironment.DEMO),
])
def test_a_qr_environment_that_agrees_is_taken(env: pytest.MonkeyPatch, ksef_env: str,
                                               qr_env: str, qr: QrEnvironment) -> None:
    env.setenv("KSEF_ENV", ksef_env)
    env.setenv("KSEF_QR_ENV", qr_env)
    assert _qr(env) is qr


@pytest.mark.parametrize("url", ["http://ksef.example.com:8700", "http://10.0.0.7:8700/v2",
                                 "http://emulator:8700"])
def test_plain_http_to_another_host_is_refused(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("KSEF_ENV", "emulator")
    env.setenv("KSEF_API_URL", url)
    with pytest.raises(ValueError, match="unencrypted"):
        _ksef_settings()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8700", "http://localhost:8700/v2",
                                 "http://[::1]:8700", "https://ksef-emulator.example.com"])
def test_local_http_and_any_https_are_taken(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("KSEF_ENV", "emulator")
    env.setenv("KSEF_API_URL", url)
    assert _ksef_settings().environment().api_url.startswith(url.rstrip("/").removesuffix("/v2"))


def test_plain_http_off_host_with_the_explicit_opt_out(env: pytest.MonkeyPatch) -> None:
    env.setenv("KSEF_ENV", "emulator")
    env.setenv("KSEF_API_URL", "http://emulator:8700")
    env.setenv("KSEF_ALLOW_HTTP_API", "1")
    assert _ksef_settings().api_url == "http://emulator:8700"


def test_an_api_url_with_mf_ksef_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("KSEF_ENV", "prod")
    env.setenv("KSEF_API_URL", "https://somewhere.example.com")
    with pytest.raises(ValueError, match="KSEF_API_URL is for the emulator only"):
        _ksef_settings()


# --- 2. SASL never without TLS ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_sasl_without_tls_is_refused(protocol: str) -> None:
    from pipeline.runtime.settings import KafkaSettings

    with pytest.raises(ValueError) as raised:
        KafkaSettings(security_protocol=protocol, sasl_mechanism="SCRAM-SHA-512",
                      sasl_username="ksef", sasl_password=SECRET)
    message = str(raised.value)
    assert "SASL_SSL" in message and "KSEF_KAFKA_ALLOW_PLAINTEXT_SASL" in message
    assert SECRET not in message


def test_sasl_over_tls_and_the_local_opt_out_are_taken(env: pytest.MonkeyPatch) -> None:
    from pipeline.runtime.settings import KafkaSettings

    KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u",
                  sasl_password=SECRET)
    env.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")
    env.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    env.setenv("KAFKA_SASL_USERNAME", "u")
    env.setenv("KAFKA_SASL_PASSWORD", SECRET)
    with pytest.raises(ValueError, match="SASL_SSL"):
        KafkaSettings.from_env()
    env.setenv("KSEF_KAFKA_ALLOW_PLAINTEXT_SASL", "1")
    assert KafkaSettings.from_env().sasl_password == SECRET


def test_topics_describe_refuses_sasl_without_tls(env: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    env.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    env.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    env.setenv("KAFKA_SASL_USERNAME", "ksef")
    env.setenv("KAFKA_SASL_PASSWORD", SECRET)
    code = main(["topics", "describe"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "SASL_SSL" in err and "KSEF_KAFKA_ALLOW_PLAINTEXT_SASL" in err
    assert SECRET not in err


# --- 3. no secret in any repr ---------------------------------------------------------------


def _objects_holding(secret: str, tmp: Path) -> dict[str, Any]:
    from pipeline.bearer import TokenEntry
    from pipeline.credentials import CredentialStore
    from pipeline.credentials.config import ContextEntry
    from pipeline.emulator.config import EmulatorConfig
    from pipeline.emulator.process import EmulatorProcess
    from pipeline.ksef.credentials import CertificateCredential, TokenCredential
    from pipeline.ksef_api.link import KsefSettings
    from pipeline.runtime.settings import KafkaSettings

    cert = mint_test_certificate(NIP, key="ec")
    key_b64 = base64.b64encode(secret.encode().ljust(32, b"x")[:32]).decode()
    return {
        "KafkaSettings": KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                                       sasl_username="ksef", sasl_password=secret,
                                       ssl_key_password=secret),
        "KsefSettings": KsefSettings(env_name="emulator"),
        "TokenCredential": TokenCredential(NIP, secret, source="KSEF_TOKEN_x"),
        "CertificateCredential": CertificateCredential(NIP, cert.certificate, cert.private_key,
                                                       source="k.pem"),
        "ContextEntry": ContextEntry(NIP, "token", token=secret),
        "TokenEntry": TokenEntry("alice", secret),
        "CredentialStore": CredentialStore(None, None, environ={f"KSEF_TOKEN_{NIP}": secret}),
        "EmulatorConfig": EmulatorConfig(data_dir=tmp, admin_tokens=(secret,)),
        "EmulatorProcess": EmulatorProcess(proc=None, base_url="http://127.0.0.1:1",  # type: ignore[arg-type]
                                           data_dir=tmp, admin_token=secret),
        "Keyring": Keyring.from_json(json.dumps({"active": "k1", "keys": {"k1": key_b64}})),
        "_key_b64": key_b64,
    }


def test_no_secret_in_any_repr_or_str(tmp_path: Path) -> None:
    objects = _objects_holding(SECRET, tmp_path)
    key_b64 = objects.pop("_key_b64")
    leaks = {name: text for name, obj in objects.items()
             for text in (repr(obj), str(obj)) if SECRET in text or key_b64 in text}
    assert not leaks, leaks


def test_the_emulators_signing_secret_is_not_in_its_keyrings_repr(tmp_path: Path) -> None:
    from pipeline.emulator.keys import KeyRing

    ring = KeyRing.load(tmp_path)
    assert repr(ring.secret)[2:-1] not in repr(ring)
    assert ring.secret.hex() not in repr(ring)


def test_kafka_settings_keeps_the_secrets_it_does_not_print() -> None:
    from pipeline.runtime.settings import KafkaSettings

    kafka = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                          sasl_username="ksef", sasl_password=SECRET, ssl_key_password=SECRET)
    assert kafka.confluent()["sasl.password"] == SECRET
    assert kafka.confluent()["ssl.key.password"] == SECRET
    assert SECRET not in repr(dataclasses.replace(kafka, bootstrap_servers="b:9093"))


# --- 4. log redaction --------------------------------------------------------------------------


@pytest.fixture
def log_lines() -> Any:
    """The JSON lines of `pipeline.runtime.logs` (structlog and stdlib) written to a buffer."""
    from pipeline.runtime import logs
    buffer = io.StringIO()
    config = logs.logging_config("DEBUG")
    config["handlers"]["stderr"]["stream"] = buffer
    logging.config.dictConfig(config)
    structlog.configure(
        processors=[*logs._SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger, cache_logger_on_first_use=False)

    def read() -> list[str]:
        return buffer.getvalue().splitlines()

    yield read
    structlog.reset_defaults()
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})


def test_secret_named_fields_are_redacted_nested_too(log_lines: Any) -> None:
    log = structlog.get_logger("test.redaction")
    log.info("connected", password="pw-1-value", sasl_password="pw-2-value",
             api_key="pw-3-value", Authorization="pw-4-value", access_token="pw-5-value",
             config={"ssl": {"private_key": "pw-6-value", "key_password": "pw-7-value"},
                     "tokens": ["pw-8-value"], "host": "broker1"},
             tokens_file="/run/secrets/tokens.json", key_id="k2", token_fingerprint="sha256:ab",
             token="sha256:0123456789abcdef")  # the audit line names a token so
    line = json.loads(log_lines()[-1])
    assert not any(f"pw-{i}-value" in log_lines()[-1] for i in range(1, 9)), line
    assert line["password"] == "[redacted]" and line["config"]["ssl"]["private_key"] == "[redacted]"
    assert line["config"]["host"] == "broker1"  # what is not secret stays
    assert (line["tokens_file"], line["key_id"], line["token_fingerprint"]) == (
        "/run/secrets/tokens.json", "k2", "sha256:ab")
    assert line["token"] == "sha256:0123456789abcdef"


def test_bearer_credentials_are_scrubbed_from_any_string(log_lines: Any) -> None:
    structlog.get_logger("t").warning("sent", header="Authorization: Bearer abc.DEF-123_xyz")
    logging.getLogger("aiohttp.client").error("request with Bearer Zm9vYmFyYmF6cXV4 failed")
    text = "\n".join(log_lines())
    assert "abc.DEF-123_xyz" not in text and "Zm9vYmFyYmF6cXV4" not in text
    assert text.count("Bearer [redacted]") == 2


def test_configured_secrets_are_scrubbed_wherever_they_appear(
        log_lines: Any, env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Values the settings loaders registered: SASL password, KSeF tokens, operator and
    admin tokens, keyring keys, key passwords; in structlog and stdlib (Faust, aiokafka)
    records, messages, fields and tracebacks alike."""
    from pipeline.bearer import read_tokens, write_token_file
    from pipeline.credentials import CredentialStore
    from pipeline.runtime.keyring_file import load_keyring
    from pipeline.runtime.settings import KafkaSettings

    sasl, env_token, file_token = "sasl-PW-7781xx", "ksef-token-env-5512", "ksef-token-file-8833"
    env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    env.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    env.setenv("KAFKA_SASL_USERNAME", "u")
    env.setenv("KAFKA_SASL_PASSWORD", sasl)
    KafkaSettings.from_env()
    env.setenv(f"KSEF_TOKEN_{NIP}", env_token)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"1234563218": file_token}))
    tokens.chmod(0o600)
    store = CredentialStore(None, tokens)
    store.get(NIP)
    store.get("1234563218")
    CredentialStore(None, None, environ={"KSEF_TOKEN_1111111111": "never-asked-token-42"})
    operator = write_token_file(tmp_path / "operator-token", "alice")
    manual = tmp_path / "admin-token"
    manual.write_text("admin:admin-token-written-by-hand-0001\n")
    manual.chmod(0o600)
    read_tokens(manual)
    ring = json.loads(new_keyring_json())
    env.setenv("KSEF_KEYRING", json.dumps(ring))
    env.delenv("KSEF_KEYRING_FILE", raising=False)
    load_keyring()
    key = ring["keys"]["k1"]
    password = "key-file-password-77"
    pem = mint_test_certificate(NIP, key="ec")
    (tmp_path / "c.pem").write_bytes(pem.certificate_pem())
    (tmp_path / "k.der").write_bytes(pem.key_der(password.encode()))
    (tmp_path / "k.pass").write_text(password)
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"contexts": {"7010002137": {
        "certificate": "c.pem", "private_key": "k.der", "password_file": "k.pass"}}}))
    for p in (tmp_path / "k.der", tmp_path / "k.pass"):
        p.chmod(0o600)
    CredentialStore(creds).get("7010002137")

    secrets = [sasl, env_token, file_token, "never-asked-token-42", operator,
               "admin-token-written-by-hand-0001", key, password]
    everything = " ".join(secrets)
    structlog.get_logger("t").info(f"event {everything}", detail=everything,
                                   nested={"list": [everything]})
    logging.getLogger("faust.worker").warning("stdlib %s", everything)
    logging.getLogger("aiokafka").error("with args %s and %r", sasl, {"x": key})
    try:
        raise RuntimeError(f"boom {everything}")
    except RuntimeError:
        logging.getLogger("faust").exception("crashed")
        structlog.get_logger("t").exception("crashed too")

    text = "\n".join(log_lines())
    assert len(log_lines()) == 5
    assert not [s for s in secrets if s in text], text
    assert text.count("[redacted]") >= 5 * 3


def test_the_emulator_log_filter_scrubs_its_plain_text_lines(env: pytest.MonkeyPatch) -> None:
    from pipeline.runtime.logs import RedactFilter
    from pipeline.runtime.redaction import register

    register("emulator-admin-token-000111")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactFilter())
    logger = logging.getLogger("test.emulator.plain")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("admin %s", "emulator-admin-token-000111")
        logger.warning("Authorization: Bearer sometoken123456")
    finally:
        logger.removeHandler(handler)
    assert "emulator-admin-token-000111" not in buffer.getvalue()
    assert "sometoken123456" not in buffer.getvalue()


def test_short_values_are_not_registered_so_text_stays_readable() -> None:
    from pipeline.runtime.redaction import register, scrub_text

    register("abc", "", None)
    assert scrub_text("abc abc") == "abc abc"
