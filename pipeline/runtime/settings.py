"""Runtime settings from the environment (secrets from files or env, never from code).

Every environment variable a worker reads is read here, into a frozen dataclass with the
documented default (README, Configuration); stages, modes, the API client and the
credential store take these settings instead of reading `os.environ` themselves
(tests/unit/test_import_rules.py holds them to it). The command-line tools may still read
variables of their own.

One place maps the KAFKA_* variables to both client families the pipeline uses:
confluent-kafka (ingest, admin, tests) and aiokafka under Faust (workers).

This module imports no stage, mode or API module: where a stage needs a type of its own
(a package format, a QR environment, a BatchLimits), it builds it from the plain values
here.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pipeline.runtime import redaction

N = TypeVar("N", int, float)


def _secret(name: str) -> str | None:
    """VAR, or the contents of the file named by VAR_FILE (for mounted secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        value: str | None = Path(path).read_text(encoding="utf-8").strip()
    else:
        value = os.environ.get(name)
    redaction.register(value)
    return value


ALLOW_PLAINTEXT_SASL = "KSEF_KAFKA_ALLOW_PLAINTEXT_SASL"


class SettingsError(ValueError):
    """A setting that cannot be used as given; the CLI prints it without a traceback."""


class InsecureSettingsError(SettingsError):
    """A configuration that would send a secret in the clear; refused at settings time."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    # SASL credentials over a connection without TLS (PLAINTEXT, SASL_PLAINTEXT) are
    # refused unless this is set (KSEF_KAFKA_ALLOW_PLAINTEXT_SASL=1: local tests only).
    allow_plaintext_sasl: bool = False

    def __post_init__(self) -> None:
        redaction.register(self.sasl_password, self.ssl_key_password)
        has_sasl = bool(self.sasl_mechanism or self.sasl_username or self.sasl_password)
        tls = self.security_protocol.upper() in ("SSL", "SASL_SSL")
        if has_sasl and not tls and not self.allow_plaintext_sasl:
            raise InsecureSettingsError(
                f"Kafka SASL credentials with KAFKA_SECURITY_PROTOCOL="
                f"{self.security_protocol} would cross the network unencrypted: use "
                f"SASL_SSL (with KAFKA_SSL_CAFILE for a private CA); for a local test broker "
                f"only, {ALLOW_PLAINTEXT_SASL}=1 allows it")

    @classmethod
    def from_env(cls) -> KafkaSettings:
        return cls(
            bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers),
            security_protocol=os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            sasl_mechanism=os.environ.get("KAFKA_SASL_MECHANISM"),
            sasl_username=os.environ.get("KAFKA_SASL_USERNAME"),
            sasl_password=_secret("KAFKA_SASL_PASSWORD"),
            ssl_cafile=os.environ.get("KAFKA_SSL_CAFILE"),
            ssl_certfile=os.environ.get("KAFKA_SSL_CERTFILE"),
            ssl_keyfile=os.environ.get("KAFKA_SSL_KEYFILE"),
            ssl_key_password=_secret("KAFKA_SSL_KEY_PASSWORD"),
            allow_plaintext_sasl=os.environ.get(ALLOW_PLAINTEXT_SASL, "").strip().lower()
            in ("1", "true", "yes"),
        )

    def confluent(self, **extra: Any) -> dict[str, Any]:
        """Config for confluent-kafka Producer/Consumer/AdminClient."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_password or ""
        if self.ssl_cafile:
            conf["ssl.ca.location"] = self.ssl_cafile
        if self.ssl_certfile:
            conf["ssl.certificate.location"] = self.ssl_certfile
        if self.ssl_keyfile:
            conf["ssl.key.location"] = self.ssl_keyfile
        if self.ssl_key_password:
            conf["ssl.key.password"] = self.ssl_key_password
        conf.update(extra)
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.security_protocol:
            return None
        ctx = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, self.ssl_key_password)
        return ctx

    def faust_url(self) -> str:
        return ";".join(f"kafka://{h.strip()}" for h in self.bootstrap_servers.split(","))

    def faust_credentials(self) -> Any:
        """Faust broker_credentials for TLS / SASL clusters (None for plaintext)."""
        import faust  # local: keep quick commands free of Faust's import cost

        ctx = self.ssl_context()
        if self.sasl_mechanism:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                ssl_context=ctx,
                mechanism=self.sasl_mechanism,
            )
        if ctx is not None:
            return faust.SSLCredentials(ctx)
        return None


# RocksDB of the duplicate table (one database per partition) and of the invoice ledger.
# Its defaults (64 MiB memtables, three of them, and Faust's 2 GiB block cache per
# database) let a worker's memory grow with every number written until a flush: with
# these, a worker's peak stays flat in the size of the run (`ops/bench e2e
# --rss-compare`). Lookups are point reads of recent keys: a small cache serves them.
ROCKSDB_MEMORY = {
    "write_buffer_size": 4 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 * 1024 * 1024,
    "block_cache_compressed_size": 0,
}


@dataclass(frozen=True)
class WorkerSettings:
    app_id: str = "ksef-pipeline"
    data_dir: str = "var/worker"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    log_level: str = "info"
    # The duplicate table holds every invoice number for years: on disk (RocksDB, in the
    # data dir) it costs no memory and a restart reads only the changelog's tail.
    dedupe_store: str = "rocksdb"  # or "memory"
    # How long the broker may hold an empty fetch (Faust's own 1.5 s stalls stages that
    # read their own output; see pipeline/runtime/faust_fixes.py).
    fetch_max_wait_ms: int = 100
    # How much a fetch waits for (up to fetch_max_wait_ms): under load, a fetch per few
    # records made the broker answer thousands of fetches a second.
    fetch_min_bytes: int = 1
    # How long a produce request may go unanswered before its batch expires: Faust's
    # 20 minutes stalls a worker that long; an expired batch fails the next flush
    # (`ProduceGuard`), so the worker stops and handles its inputs again on restart.
    producer_request_timeout_s: float = 120.0
    # A table recovery that got no changelog record for this long ends the worker so that
    # it is restarted (see pipeline/runtime/recovery_watch.py); 0 turns the watch off.
    recovery_stall_s: float = 120.0
    # How long the group coordinator waits for a silent member before it hands that
    # member's partitions to the others: Faust's 60 s held a killed worker's invoices a
    # minute and more; a live worker heartbeats every 3 s from its own thread of work.
    session_timeout_s: float = 15.0
    # A worker told to stop (SIGTERM, SIGINT, SIGHUP) exits after this long whatever its
    # broker does; offsets of unfinished records are not committed, so they come again.
    stop_deadline_s: float = 12.0
    # While the broker is unreachable, the log repeats so every this many seconds.
    broker_log_reminder_s: float = 30.0
    # Whether a stop or rebalance waits for every event in hand (KSEF_STREAM_WAIT_EMPTY;
    # `worker --stages` sets 0 with pack/submit/upo, which hold events until a batch ends).
    stream_wait_empty: bool = True
    # Where batch packages and encrypted parts are written (KSEF_SPOOL_DIR); None: the
    # data dir's `spool` (see `spool_root`).
    spool_dir: str | None = None
    # How often freed memory is given back to the system (pipeline/runtime/memory_return.py);
    # 0 turns it off.
    memory_return_s: float = 0.5

    def spool_root(self) -> Path:
        """This worker's spool directory: KSEF_SPOOL_DIR, or <data dir>/spool."""
        return Path(self.spool_dir if self.spool_dir is not None
                    else str(Path(self.data_dir) / "spool"))

    @classmethod
    def from_env(cls) -> WorkerSettings:
        return cls(
            app_id=os.environ.get("KSEF_APP_ID", cls.app_id),
            data_dir=os.environ.get("KSEF_DATA_DIR", cls.data_dir),
            web_host=os.environ.get("KSEF_WEB_HOST", cls.web_host),
            web_port=_number("KSEF_WEB_PORT", cls.web_port),
            log_level=os.environ.get("KSEF_LOG_LEVEL", cls.log_level),
            dedupe_store=_choice("KSEF_DEDUPE_STORE", cls.dedupe_store, ("rocksdb", "memory")),
            fetch_max_wait_ms=_number("KSEF_FETCH_MAX_WAIT_MS", cls.fetch_max_wait_ms),
            fetch_min_bytes=_number("KSEF_FETCH_MIN_BYTES", cls.fetch_min_bytes),
            producer_request_timeout_s=_number("KSEF_PRODUCER_REQUEST_TIMEOUT_S",
                                               cls.producer_request_timeout_s),
            recovery_stall_s=_number("KSEF_RECOVERY_STALL_S", cls.recovery_stall_s),
            session_timeout_s=_number("KSEF_SESSION_TIMEOUT_S", cls.session_timeout_s),
            stop_deadline_s=_number("KSEF_STOP_DEADLINE_S", cls.stop_deadline_s),
            broker_log_reminder_s=_number("KSEF_BROKER_LOG_REMINDER_S",
                                          cls.broker_log_reminder_s),
            stream_wait_empty=os.environ.get("KSEF_STREAM_WAIT_EMPTY", "1") != "0",
            spool_dir=os.environ.get("KSEF_SPOOL_DIR"),
            memory_return_s=_number("KSEF_MEMORY_RETURN_S", cls.memory_return_s),
        )


def _number(name: str, default: N) -> N:
    """A numeric setting, of the default's type (int or float)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return type(default)(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number like {default}, not {raw!r}") from None


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def aiokafka_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection keyword arguments for plain aiokafka clients (outside Faust)."""
    opts: dict[str, Any] = {"bootstrap_servers": kafka.bootstrap_servers,
                            "security_protocol": kafka.security_protocol}
    ctx = kafka.ssl_context()
    if ctx is not None:
        opts["ssl_context"] = ctx
    if kafka.sasl_mechanism:
        opts.update(sasl_mechanism=kafka.sasl_mechanism,
                    sasl_plain_username=kafka.sasl_username,
                    sasl_plain_password=kafka.sasl_password)
    return opts


# --- plain readers keeping each variable's historical parsing (and its error) ------------

def _float(name: str, default: str) -> float:
    return float(os.environ.get(name, default))


def _int(name: str, default: str) -> int:
    return int(os.environ.get(name, default))


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, not {value}")
    return value


# --- the KSeF API (pipeline/ksef_api/link.py builds and checks KsefSettings from it) ---

@dataclass(frozen=True)
class KsefApiSettings:
    """The KSeF API variables as given; `KsefSettings.from_api_settings` checks them
    (KSEF_ENV required and known, KSEF_API_URL for the emulator only, https off this host).
    """

    env_name: str | None = None  # KSEF_ENV: production | demo | test | emulator (required)
    api_url: str | None = None  # KSEF_API_URL (emulator only; default its local URL)
    # KSEF_ALLOW_HTTP_API=1: plain http to a non-local API URL (tests only)
    allow_http_api: bool = False
    tokens_file: str | None = None  # KSEF_TOKENS_FILE
    credentials_file: str | None = None  # KSEF_CREDENTIALS_FILE
    limits: str | None = None  # KSEF_LIMITS, emulator only: production | test | off
    time_scale: float = 1.0  # KSEF_LIMITS_TIME_SCALE
    upload_parallelism: int = 4  # KSEF_UPLOAD_PARALLELISM

    @classmethod
    def from_env(cls) -> KsefApiSettings:
        return cls(
            env_name=os.environ.get("KSEF_ENV"),
            api_url=os.environ.get("KSEF_API_URL"),
            allow_http_api=os.environ.get("KSEF_ALLOW_HTTP_API", "").strip()
            in ("1", "true", "yes"),
            tokens_file=os.environ.get("KSEF_TOKENS_FILE"),
            credentials_file=os.environ.get("KSEF_CREDENTIALS_FILE"),
            limits=os.environ.get("KSEF_LIMITS"),
            time_scale=_float("KSEF_LIMITS_TIME_SCALE", "1"),
            upload_parallelism=_int("KSEF_UPLOAD_PARALLELISM", "4"),
        )


# --- credentials and keys ---------------------------------------------------------------

TOKEN_ENV_PREFIX = "KSEF_TOKEN_"


def token_variables() -> dict[str, str]:
    """The KSEF_TOKEN_<NIP> variables (legacy: one KSeF token per seller context), as
    they are when asked (a CredentialStore takes them when it is made)."""
    return {name: value for name, value in os.environ.items()
            if name.startswith(TOKEN_ENV_PREFIX)}


KEYRING_FILE, KEYRING_TEXT, KEYRING_CHECK_S = (
    "KSEF_KEYRING_FILE", "KSEF_KEYRING", "KSEF_KEYRING_CHECK_S")
DEFAULT_KEYRING_CHECK_S = 5.0


@dataclass(frozen=True)
class KeyringSettings:
    """Where the invoice keyring is: a file (KSEF_KEYRING_FILE, 0600) or its JSON text
    (KSEF_KEYRING); how often a changed file is noticed (KSEF_KEYRING_CHECK_S)."""

    file: str | None = None
    text: str | None = field(default=None, repr=False)
    check_s: float = DEFAULT_KEYRING_CHECK_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyringSettings:
        """From the process environment, or from `environ` when given (tests)."""
        env = os.environ if environ is None else environ
        return cls(file=env.get(KEYRING_FILE) or None, text=env.get(KEYRING_TEXT),
                   check_s=float(env.get(KEYRING_CHECK_S) or DEFAULT_KEYRING_CHECK_S))


OPERATOR_TOKEN_FILE = "KSEF_OPERATOR_TOKEN_FILE"


def operator_token_file(environ: Mapping[str, str] | None = None) -> str:
    """KSEF_OPERATOR_TOKEN_FILE ("" when unset: the operator endpoints are off), read at
    every call so that a worker's answer follows its environment."""
    env = os.environ if environ is None else environ
    return env.get(OPERATOR_TOKEN_FILE, "").strip()


# --- stages -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ValidateSealSettings:
    """Stage s1 (validate and seal)."""

    ksef_env: str | None = None  # KSEF_ENV: which QR host the links name
    qr_env: str | None = None  # KSEF_QR_ENV: must agree with KSEF_ENV when given
    offline_cert_dir: str | None = None  # KSEF_OFFLINE_CERT_DIR: offline certificates
    # KSEF_OFFLINE_KEY_PASSWORD: the password of their keys
    offline_key_password: str | None = field(default=None, repr=False)
    pack_level: int = 3  # KSEF_PACK_LEVEL: deflate level (the pack stage's)
    # KSEF_ATTACHMENT_SELLERS: seller NIPs with attachments enabled, comma-separated, or *
    attachment_sellers: str = ""
    # KSEF_VALIDATE_BATCH: records the stage's loop polls, handles and commits at once
    batch: int = 500

    @classmethod
    def from_env(cls) -> ValidateSealSettings:
        return cls(
            ksef_env=os.environ.get("KSEF_ENV"),
            qr_env=os.environ.get("KSEF_QR_ENV"),
            offline_cert_dir=os.environ.get("KSEF_OFFLINE_CERT_DIR"),
            offline_key_password=os.environ.get("KSEF_OFFLINE_KEY_PASSWORD"),
            pack_level=_int("KSEF_PACK_LEVEL", "3"),
            attachment_sellers=os.environ.get("KSEF_ATTACHMENT_SELLERS", "").strip(),
            batch=_positive(_int("KSEF_VALIDATE_BATCH", "500"), "KSEF_VALIDATE_BATCH"),
        )


@dataclass(frozen=True)
class PackStageSettings:
    """Stage s2 (pack); `PackSettings.build` turns these into the packing decisions' own."""

    max_invoices: int = 10_000  # KSEF_BATCH_MAX_INVOICES
    max_part_bytes: int = 100_000_000  # KSEF_PART_BYTES
    linger_s: float = 30.0  # KSEF_PACK_LINGER_S: seal once no invoice came this long ...
    max_age_s: float = 300.0  # KSEF_PACK_MAX_AGE_S: ... or once the batch is this old
    archive_format: str = "zip"  # KSEF_PACK_FORMAT
    deflate_level: int = 3  # KSEF_PACK_LEVEL
    deadline_safety_s: float = 3600.0  # KSEF_DEADLINE_SAFETY_S
    deadline_fill_s: float = 10.0  # KSEF_DEADLINE_FILL_S
    # KSEF_PACK_ROWS: manifests list invoices as rows (topics/packed_rows.py); 0 writes
    # objects, which workers older than rows read, for the length of a rolling upgrade.
    manifest_rows: bool = True

    @classmethod
    def from_env(cls) -> PackStageSettings:
        return cls(
            max_invoices=_int("KSEF_BATCH_MAX_INVOICES", "10000"),
            max_part_bytes=_int("KSEF_PART_BYTES", "100000000"),
            linger_s=_float("KSEF_PACK_LINGER_S", "30"),
            max_age_s=_float("KSEF_PACK_MAX_AGE_S", "300"),
            archive_format=os.environ.get("KSEF_PACK_FORMAT", "zip"),
            deflate_level=_int("KSEF_PACK_LEVEL", "3"),
            deadline_safety_s=_float("KSEF_DEADLINE_SAFETY_S", "3600"),
            deadline_fill_s=_float("KSEF_DEADLINE_FILL_S", "10"),
            manifest_rows=os.environ.get("KSEF_PACK_ROWS", "1") != "0",
        )


@dataclass(frozen=True)
class SubmitStageSettings:
    """Stage s3 (submit)."""

    concurrency: int = 2  # KSEF_SUBMIT_CONCURRENCY: batches submitted at once
    credential_recheck_s: float = 30.0  # KSEF_CREDENTIAL_RECHECK_S: a held context's recheck
    credential_check_s: float = 3600.0  # KSEF_CREDENTIAL_CHECK_S: every context's check
    hold_probe_s: float = 5.0  # KSEF_HOLD_PROBE_S: while KSeF is announced down

    @classmethod
    def from_env(cls) -> SubmitStageSettings:
        return cls(
            concurrency=_int("KSEF_SUBMIT_CONCURRENCY", "2"),
            credential_recheck_s=_float("KSEF_CREDENTIAL_RECHECK_S", "30"),
            credential_check_s=_float("KSEF_CREDENTIAL_CHECK_S", "3600"),
            hold_probe_s=_float("KSEF_HOLD_PROBE_S", "5"),
        )


@dataclass(frozen=True)
class SettleStageSettings:
    """Stage s4 (UPO / settle)."""

    concurrency: int = 4  # KSEF_UPO_CONCURRENCY: sessions settled at once

    @classmethod
    def from_env(cls) -> SettleStageSettings:
        return cls(concurrency=_int("KSEF_UPO_CONCURRENCY", "4"))


# --- modes ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModeStateSettings:
    tick_s: float = 5.0  # KSEF_MODE_TICK_S: how often the mode state is re-derived

    @classmethod
    def from_env(cls) -> ModeStateSettings:
        return cls(tick_s=_float("KSEF_MODE_TICK_S", "5"))


@dataclass(frozen=True)
class LatarniaSettings:
    """The Latarnia poller (announcements of KSeF outages)."""

    url: str | None = None  # KSEF_LATARNIA_URL; None: the KSeF environment's
    poll_s: float = 60.0  # KSEF_LATARNIA_POLL_S (0 = no poller)
    # KSEF_LATARNIA_UNREACHABLE_AFTER_S: failing this long -> UNKNOWN + alert; 2 polls
    unreachable_after_s: float = 120.0

    @classmethod
    def from_env(cls) -> LatarniaSettings:
        poll_s = _float("KSEF_LATARNIA_POLL_S", "60")
        return cls(
            url=os.environ.get("KSEF_LATARNIA_URL") or None,
            poll_s=poll_s,
            unreachable_after_s=_float("KSEF_LATARNIA_UNREACHABLE_AFTER_S", str(2 * poll_s)),
        )


@dataclass(frozen=True)
class ObservedOutageSettings:
    # KSEF_OBSERVED_OUTAGE_AFTER_S: KSeF failing our requests this long -> OBSERVED_OUTAGE
    outage_after_s: float = 60.0

    @classmethod
    def from_env(cls) -> ObservedOutageSettings:
        return cls(outage_after_s=_float("KSEF_OBSERVED_OUTAGE_AFTER_S", "60"))


# one context: 60 batch sessions an hour x 10,000 invoices (DOMAIN.md, production limits)
DEADLINE_NOMINAL_PER_HOUR = 600_000.0


@dataclass(frozen=True)
class DeadlineSettings:
    """The deadline tracker and its risk alerts."""

    check_s: float = 60.0  # KSEF_DEADLINE_CHECK_S
    risk_horizon_h: float = 48.0  # KSEF_DEADLINE_RISK_HORIZON_H
    nominal_per_hour: float = DEADLINE_NOMINAL_PER_HOUR  # KSEF_DEADLINE_NOMINAL_PER_HOUR

    @classmethod
    def from_env(cls) -> DeadlineSettings:
        return cls(
            check_s=_float("KSEF_DEADLINE_CHECK_S", "60"),
            risk_horizon_h=_float("KSEF_DEADLINE_RISK_HORIZON_H", "48"),
            nominal_per_hour=_float("KSEF_DEADLINE_NOMINAL_PER_HOUR",
                                    str(DEADLINE_NOMINAL_PER_HOUR)),
        )
