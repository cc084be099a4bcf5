"""Structured JSON logging for every process (workers, CLI, emulator).

Standard-library records (Faust, aiokafka, aiohttp) go through the same structlog
renderer, so one JSON line per event regardless of who logged it. Never pass invoice
contents, tokens or keys as log fields; should one slip through anyway, `redact` (and
`scrub_rendered` after the renderer) replace secret-named fields and every configured
secret value (`pipeline.runtime.redaction`) with `[redacted]`, for structlog and stdlib records.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

import structlog

from pipeline.runtime import redaction

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def redact(_logger: Any, _method: str, event_dict: Any) -> Any:
    """Processor: secret-named fields and configured secret values replaced (nested too)."""
    if isinstance(event_dict, str):
        return redaction.scrub_text(event_dict)
    return redaction.scrub(event_dict)


def scrub_rendered(_logger: Any, _method: str, line: Any) -> Any:
    """Processor after the renderer: a secret inside some object's repr is caught here."""
    if isinstance(line, str):
        return redaction.scrub_text(line)
    if isinstance(line, bytes):
        return redaction.scrub_text(line.decode("utf-8", "replace"))
    return line


class RedactFilter(logging.Filter):
    """For handlers outside `logging_config` (the emulator's plain text log): the
    formatted message of a record, secrets replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = redaction.scrub_text(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redaction.scrub_text(record.exc_text)
        return True


def logging_config(level: str = "INFO", broker_reminder_s: float = 30.0) -> dict[str, Any]:
    """A dictConfig routing stdlib logging through structlog's JSON renderer.

    The handler's filter turns the Kafka clients' per-request errors about a lost broker
    into one line per state change (`pipeline.runtime.broker_log`).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "broker_state": {"()": "pipeline.runtime.broker_log.BrokerStateFilter",
                             "reminder_s": broker_reminder_s},
        },
        "formatters": {
            "json": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    redact,
                    structlog.processors.JSONRenderer(),
                    scrub_rendered,
                ],
                "foreign_pre_chain": _SHARED,
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
                "filters": ["broker_state"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "aiokafka": {"level": "WARNING"},
            "faust.transport.drivers.aiokafka": {"level": "WARNING"},
        },
    }


def configure(level: str = "INFO", broker_reminder_s: float = 30.0) -> None:
    logging.config.dictConfig(logging_config(level, broker_reminder_s))
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get(name: str) -> Any:
    return structlog.get_logger(name)
