"""The one place Kafka clients are built: librdkafka's (confluent-kafka) producer,
consumer and admin client, and aiokafka's consumer for the asyncio readers that run
beside Faust. Connection, TLS and SASL settings come from `KafkaSettings` every time;
callers add only what their use needs (a group id, fetch sizes, a logger).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.runtime.settings import KafkaSettings, aiokafka_options

if TYPE_CHECKING:  # each library is imported when a client of it is built: quick
    from aiokafka import AIOKafkaConsumer  # commands never load the other
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient


def kafka_producer(kafka: KafkaSettings, **extra: Any) -> Producer:
    from confluent_kafka import Producer

    return Producer(kafka.confluent(**extra))


def kafka_consumer(kafka: KafkaSettings, **extra: Any) -> Consumer:
    from confluent_kafka import Consumer

    return Consumer(kafka.confluent(**extra))


def kafka_admin(kafka: KafkaSettings, **extra: Any) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka.confluent(**extra))


def stream_consumer(kafka: KafkaSettings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An asyncio consumer (aiokafka, as Faust uses) for readers running in a worker."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, **options, **aiokafka_options(kafka))
