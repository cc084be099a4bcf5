"""The one place Kafka clients are built: librdkafka's (confluent-kafka) producer,
consumer and admin client, and aiokafka's consumer for the asyncio readers that run
beside Faust. Connection, TLS and SASL settings come from `KafkaSettings` every time;
callers add only what their use needs (a group id, fetch sizes). librdkafka's own log
lines go to the `librdkafka` Python logger, never raw to stderr: the process's logging
decides (the worker's filters a lost broker down to one line; an application embedding
`InvoiceProducer` gets them like any library's warnings).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pipeline.runtime.settings import KafkaSettings, aiokafka_options

if TYPE_CHECKING:  # each library is imported when a client of it is built: quick
    from aiokafka import AIOKafkaConsumer  # commands never load the other
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient


def _config(kafka: KafkaSettings, extra: dict[str, Any]) -> dict[str, Any]:
    return kafka.confluent(**{"logger": logging.getLogger("librdkafka"), **extra})


def kafka_producer(kafka: KafkaSettings, **extra: Any) -> Producer:
    from confluent_kafka import Producer

    return Producer(_config(kafka, extra))


def kafka_consumer(kafka: KafkaSettings, **extra: Any) -> Consumer:
    from confluent_kafka import Consumer

    return Consumer(_config(kafka, extra))


def kafka_admin(kafka: KafkaSettings, **extra: Any) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient(_config(kafka, extra))


def stream_consumer(kafka: KafkaSettings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An asyncio consumer (aiokafka, as Faust uses) for readers running in a worker."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, **options, **aiokafka_options(kafka))
