"""Structured JSON logging for every process (workers, CLI, emulator).

Standard-library records (Faust, aiokafka, aiohttp) go through the same structlog
renderer, so one JSON line per event regardless of who logged it. Never pass invoice
contents, tokens or keys as log fields.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

import structlog

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def logging_config(level: str = "INFO", broker_reminder_s: float = 30.0) -> dict[str, Any]:
    """A dictConfig routing stdlib logging through structlog's JSON renderer.

    The handler's filter turns the Kafka clients' per-request errors about a lost broker
    into one line per state change (`pipeline.broker_log`).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "broker_state": {"()": "pipeline.broker_log.BrokerStateFilter",
                             "reminder_s": broker_reminder_s},
        },
        "formatters": {
            "json": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(),
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
