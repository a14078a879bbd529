"""Lag read from the broker for groups with no worker (glimpse/group_lag.py), side-by-side
workers' groups found on the broker, and the lag exporter, on a real in-memory tansu
broker, where ListOffsets "latest" is wrong (tests/integration/test_lag_embedded.py
repeats the check on the stack's S3-backed broker)."""

from __future__ import annotations

from functools import partial

import bus_helpers
import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client.parser import text_string_to_metric_families

from glimpse.bus import ensure_topics, make_producer
from glimpse.config import KafkaSettings
from glimpse.group_lag import read_group_lag
from glimpse.lag_exporter import LagExporter
from glimpse.stages import side_by_side_groups

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


def test_side_by_side_groups_are_found_on_the_broker_by_their_names(kafka: KafkaSettings) -> None:
    """Only a side-by-side worker knows its model, so its groups are found in the broker's
    list (once they committed) and read with the topics of the stage group they extend."""
    assert kafka.bootstrap
    produce_to(kafka, {0: 5})
    usual = {"glimpse-embed": [TOPIC]}
    for group in ("glimpse-embed--minilm-cls", "glimpse-embed-backfill--minilm-cls", "other"):
        commit(kafka, group, {0: 2})
    picked = partial(side_by_side_groups, kafka.model_copy(update={"captions_ready_topic": TOPIC}))
    found = read_group_lag(kafka.bootstrap, usual, discover=picked)
    by_group = {(p.group, p.topic): p.lag for p in found if p.partition == 0}
    assert by_group[("glimpse-embed", TOPIC)] == 5
    assert by_group[("glimpse-embed--minilm-cls", TOPIC)] == 3
    assert "other" not in {p.group for p in found}


def test_side_by_side_group_names_map_to_their_stage_groups_topics() -> None:
    kafka = KafkaSettings()
    found = side_by_side_groups(
        kafka,
        ["glimpse-embed--m1", "glimpse-embed-backfill--m1", "glimpse-embed", "glimpse-nope--m",
         "glimpse-embed--", "reader"],
    )  # fmt: skip
    assert found == {
        "glimpse-embed--m1": (kafka.captions_ready_topic, kafka.transcripts_ready_topic),
        "glimpse-embed-backfill--m1": (kafka.backfill_texts_topic,),
    }


def test_the_lag_exporter_exports_side_by_side_groups(kafka: KafkaSettings) -> None:
    settings = kafka.model_copy(update={"captions_ready_topic": TOPIC})
    produce_to(kafka, {1: 4})
    commit(kafka, "glimpse-embed--new-model", {1: 1})
    exporter = LagExporter.of_pipeline("127.0.0.1", 0, settings)
    exporter.start()
    try:
        text = httpx.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=30).text
    finally:
        exporter.stop()
    lags = {
        (s.labels["group"], s.labels["topic"], s.labels["partition"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "glimpse_consumer_group_lag_messages"
    }
    assert lags[("glimpse-embed--new-model", TOPIC, "1")] == 3
    assert lags[("glimpse-embed", TOPIC, "1")] == 4
