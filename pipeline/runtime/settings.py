"""Runtime settings from the environment (secrets from files or env, never from code).

One place maps the KAFKA_* variables to both client families the pipeline uses:
confluent-kafka (ingest, admin, tests) and aiokafka under Faust (workers).
"""

from __future__ import annotations

import os
import ssl
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
