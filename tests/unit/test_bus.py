"""Sending: an acknowledgement counts only when it says where the message was stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.producer.future import RecordMetadata

from glimpse.bus import OutboundMessage, UnconfirmedSend, send_all
from glimpse.errors import is_transient


@dataclass
class Acked:
    offset: int

    def get(self, timeout: float) -> RecordMetadata:
        tp = TopicPartition("t", 0)
        return RecordMetadata("t", 0, tp, self.offset, 0, None, 1, 1, 0)


@dataclass
class AnsweringBroker:
    """What a producer hears back, one offset per send (tansu answers a retry it takes
    for a duplicate with offset -1, although the first try was never written)."""

    offsets: list[int]
    sent: list[bytes] = field(default_factory=list)

    def send(self, topic: str, key: bytes | None, value: bytes) -> Acked:
        self.sent.append(value)
        return Acked(self.offsets[len(self.sent) - 1])

    def flush(self, timeout: float) -> None:
        return


def test_acknowledged_with_offsets_is_sent() -> None:
    broker: Any = AnsweringBroker([7, 8])
    send_all(broker, [OutboundMessage("t", None, b"a"), OutboundMessage("t", None, b"b")], 5)
    assert broker.sent == [b"a", b"b"]


def test_an_acknowledgement_without_an_offset_is_infrastructure_trouble_to_retry() -> None:
    broker: Any = AnsweringBroker([7, -1])
    with pytest.raises(UnconfirmedSend) as caught:
        send_all(broker, [OutboundMessage("t", None, b"a"), OutboundMessage("t", None, b"b")], 5)
    assert is_transient(caught.value)  # the runtime sends the batch's outputs again


def test_topics_are_created_with_the_configured_partitions_and_read_back(
    memory_broker: str,
) -> None:
    from glimpse.bus import ensure_topics, topic_partitions
    from glimpse.config import KafkaSettings

    kafka = KafkaSettings(bootstrap=memory_broker, partitions=5)
    ensure_topics(kafka, ["wide"])
    ensure_topics(kafka.model_copy(update={"partitions": 2}), ["wide", "narrow"])
    # an existing topic keeps the count it was created with
    assert topic_partitions(kafka, ["wide", "narrow"]) == {"wide": 5, "narrow": 2}
