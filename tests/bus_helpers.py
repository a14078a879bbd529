"""Producing to and reading back from a test broker, for tests of workers."""

from __future__ import annotations

import time
from collections.abc import Sequence

from kafka import KafkaConsumer

from glimpse.bus import make_producer
from glimpse.config import KafkaSettings


def produce(kafka: KafkaSettings, topic: str, values: Sequence[bytes]) -> None:
    producer = make_producer(kafka)
    for value in values:
        producer.send(topic, key=b"k", value=value)
    producer.flush()
    producer.close()


def read_all(kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 20) -> list[bytes]:
    """Every value on ``topic`` from the start, once ``expected`` arrived or time is up."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            values.extend(r.value for r in records)
    consumer.close()
    return values
