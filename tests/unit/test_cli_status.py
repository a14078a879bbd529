"""What `glimpse status` says of each stage's consumer groups (``glimpse.cli``), read
from a real in-memory tansu broker with no worker running."""

from __future__ import annotations

from pathlib import Path

import bus_helpers
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from glimpse.bus import ensure_topics
from glimpse.cli import _stage_activity
from glimpse.config import KafkaSettings
from glimpse.stack.ports import private_settings
from glimpse.stages import consumer_groups


def commit(kafka: KafkaSettings, group: str, topic: str, offset: int) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False
    )
    consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)})
    consumer.close()


def test_status_shows_backfill_lag_and_side_by_side_groups(
    memory_broker: str, tmp_path: Path
) -> None:
    settings = private_settings(tmp_path)  # no worker answers on its health ports
    settings.kafka = KafkaSettings(bootstrap=memory_broker, partitions=1)
    kafka = settings.kafka
    ensure_topics(kafka, sorted({t for ts in consumer_groups(kafka).values() for t in ts}))
    bus_helpers.produce(kafka, kafka.captions_ready_topic, [b"live"] * 3)
    bus_helpers.produce(kafka, kafka.backfill_texts_topic, [b"old"] * 7)
    commit(kafka, "glimpse-embed", kafka.captions_ready_topic, 3)
    commit(kafka, "glimpse-embed-backfill", kafka.backfill_texts_topic, 2)
    # a side-by-side embed worker of another model, behind on both of its groups
    commit(kafka, "glimpse-embed--minilm-cls", kafka.captions_ready_topic, 1)
    commit(kafka, "glimpse-embed-backfill--minilm-cls", kafka.backfill_texts_topic, 0)

    stages = _stage_activity(settings)

    assert (stages["embed"]["lag"], stages["embed"]["backfill_lag"]) == (0, 5)
    side = stages["embed --side-by-side minilm-cls"]
    assert (side["lag"], side["backfill_lag"]) == (2, 7)
    assert side["partitions"] == {f"{kafka.captions_ready_topic}/0": 2,
                                  f"{kafka.transcripts_ready_topic}/0": 0}  # fmt: skip
    assert stages["transcribe-queries"]["backfill_lag"] is None  # it takes no backfill
