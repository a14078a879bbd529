"""kafka-python wrappers: manual-commit consumers, a flushing producer, topic setup."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from glimpse.config import KafkaSettings
from glimpse.errors import TransientError
from glimpse.stages import backfill_topics_of

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One consumed record, with where it came from (for commits and the DLQ)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    topic: str
    key: bytes | None
    value: bytes


def all_topics(kafka: KafkaSettings) -> list[str]:
    return [
        kafka.objects_topic,
        kafka.images_accepted_topic,
        kafka.audio_accepted_topic,
        kafka.captions_ready_topic,
        kafka.transcripts_ready_topic,
        kafka.voice_queries_topic,
        kafka.dlq_topic,
        *(t for topics in backfill_topics_of(kafka).values() for t in topics),
    ]


def ensure_topics(kafka: KafkaSettings, names: Iterable[str]) -> None:
    """Create missing topics (idempotent)."""
    assert kafka.bootstrap, "Kafka bootstrap is not configured"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=10000)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        for name in missing:
            try:
                admin.create_topics(
                    [NewTopic(name, num_partitions=kafka.partitions, replication_factor=1)]
                )
                log.info("created topic %s", name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def topic_partitions(kafka: KafkaSettings, names: Sequence[str]) -> dict[str, int]:
    """How many partitions each existing topic of ``names`` has."""
    assert kafka.bootstrap, "Kafka bootstrap is not configured"
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=10000)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(names))}
    finally:
        admin.close()


def make_producer(kafka: KafkaSettings) -> KafkaProducer:
    assert kafka.bootstrap, "Kafka bootstrap is not configured"
    return KafkaProducer(
        bootstrap_servers=kafka.bootstrap,
        acks="all",
        linger_ms=5,
        retries=5,
        # tansu records an idempotent producer's sequence number before it writes the
        # batch: killed in between, it answers the retry with DuplicateSequenceNumber,
        # which kafka-python takes for success (offset -1) though nothing was written.
        # Without idempotence a retry may store a message twice; handlers are idempotent.
        enable_idempotence=False,
        request_timeout_ms=15000,
        max_block_ms=15000,
        # kafka-python's default compares versions at connect; explicit avoids a probe.
        client_id="glimpse",
    )


def make_consumer(
    kafka: KafkaSettings,
    group: str,
    topics: Sequence[str],
    max_poll_interval_ms: int = 600_000,
) -> KafkaConsumer:
    """A consumer that never commits on its own: the runtime commits after results are stored.
    ``max_poll_interval_ms`` bounds one batch: past it the group rebalances."""
    assert kafka.bootstrap, "Kafka bootstrap is not configured"
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        group_id=group,
        client_id=group,
        enable_auto_commit=False,
        # tansu's "latest" offsets are unreliable; a new group starts from the beginning.
        auto_offset_reset="earliest",
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
        max_poll_interval_ms=max_poll_interval_ms,
        request_timeout_ms=max(30_000, kafka.session_timeout_ms + 5_000),
    )
    consumer.subscribe(list(topics))
    return consumer


class UnconfirmedSend(TransientError):
    """An acknowledgement that names no offset: the message may not be stored."""


def send_all(
    producer: KafkaProducer, messages: Sequence[OutboundMessage], timeout_s: float
) -> None:
    """Send and wait for every acknowledgement; raises if any send failed, or was
    acknowledged without an offset (a broker answer that does not say it was stored)."""
    futures = [producer.send(m.topic, key=m.key, value=m.value) for m in messages]
    producer.flush(timeout=timeout_s)
    for message, future in zip(messages, futures, strict=True):
        stored = future.get(timeout=timeout_s)
        if stored.offset < 0:
            raise UnconfirmedSend(f"{message.topic}: the broker acknowledged a message "
                                  "without an offset; sending again")  # fmt: skip


class LazyProducer:
    """A producer for request handlers: connects on first use, so a server can start
    (and serve everything else) while the broker is down. Thread-safe."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def send(self, messages: Sequence[OutboundMessage], timeout_s: float) -> None:
        with self._lock:
            if self._producer is None:
                self._producer = make_producer(self._kafka)
            producer = self._producer
        send_all(producer, messages, timeout_s)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
