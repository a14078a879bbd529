"""Lag read from the broker for groups with no worker (glimpse/group_lag.py), on a real
in-memory tansu broker, where ListOffsets "latest" is wrong (tests/integration/
test_lag_embedded.py repeats the check on the stack's S3-backed broker)."""

from __future__ import annotations

import bus_helpers
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from glimpse.bus import ensure_topics, make_producer
from glimpse.config import KafkaSettings
from glimpse.group_lag import read_group_lag

TOPIC = "grouplag.in"


@pytest.fixture
def kafka(memory_broker: str) -> KafkaSettings:
    settings = KafkaSettings(bootstrap=memory_broker, partitions=3)
    ensure_topics(settings, [TOPIC])
    return settings


def produce_to(kafka: KafkaSettings, counts: dict[int, int]) -> None:
    producer = make_producer(kafka)  # lingers, so each partition gets batches of several
    for partition, count in counts.items():
        for i in range(count):
            producer.send(TOPIC, value=f"{partition}-{i}".encode(), partition=partition)
    producer.flush()
    producer.close()


def commit(kafka: KafkaSettings, group: str, offsets: dict[int, int]) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False
    )
    consumer.commit(
        {TopicPartition(TOPIC, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
    )
    consumer.close()


def lags(kafka: KafkaSettings, *groups: str) -> dict[tuple[str, int], int]:
    assert kafka.bootstrap
    found = read_group_lag(kafka.bootstrap, {g: [TOPIC] for g in groups})
    return {(p.group, p.partition): p.lag for p in found}


def test_a_group_that_never_committed_lags_by_everything_on_the_topic(
    kafka: KafkaSettings,
) -> None:
    produce_to(kafka, {0: 12, 1: 1, 2: 0})
    assert lags(kafka, "fresh") == {("fresh", 0): 12, ("fresh", 1): 1, ("fresh", 2): 0}


def test_lag_is_what_follows_each_groups_commit(kafka: KafkaSettings) -> None:
    produce_to(kafka, {0: 10, 1: 10, 2: 10})
    commit(kafka, "behind", {0: 4, 1: 10})
    produce_to(kafka, {2: 7})
    assert lags(kafka, "behind", "none") == {
        ("behind", 0): 6,
        ("behind", 1): 0,
        ("behind", 2): 17,
        ("none", 0): 10,
        ("none", 1): 10,
        ("none", 2): 17,
    }


def test_the_answer_matches_what_a_reader_finds_on_the_topic(kafka: KafkaSettings) -> None:
    produce_to(kafka, {0: 25})
    bus_helpers.produce(kafka, TOPIC, [b"one more"])  # some partition: key b"k"
    total = sum(lags(kafka, "reader").values())
    assert len(bus_helpers.read_all(kafka, TOPIC, expected=26)) == total == 26
