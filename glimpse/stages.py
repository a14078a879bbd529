"""The pipeline's stages: each one's consumer group and the topics it reads.

One table, so that the services' declarations, the lag exporter and ``glimpse status``
name the same groups.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable

from glimpse.config import KafkaSettings


def group_of(stage: str) -> str:
    """The Kafka consumer group of a stage (a ``ServiceSpec`` name)."""
    return f"glimpse-{stage}"


def stage_topics(kafka: KafkaSettings) -> dict[str, tuple[str, ...]]:
    """Every stage a deployment runs, in pipeline order, with the topics it consumes.
    (``transcribe-all``, the laptop role that reads both audio topics, is not listed:
    a deployment runs ``transcribe`` and ``transcribe-queries`` instead.)"""
    return {
        "ingest": (kafka.objects_topic,),
        "caption": (kafka.images_accepted_topic,),
        "transcribe": (kafka.audio_accepted_topic,),
        "transcribe-queries": (kafka.voice_queries_topic,),
        "embed": (kafka.captions_ready_topic, kafka.transcripts_ready_topic),
    }


def backfill_topics_of(kafka: KafkaSettings) -> dict[str, tuple[str, ...]]:
    """The backfill topic of each stage that takes backfill, repair and DLQ re-drives."""
    return {
        "ingest": (kafka.backfill_objects_topic,),
        "caption": (kafka.backfill_images_topic,),
        "transcribe": (kafka.backfill_audio_topic,),
        "embed": (kafka.backfill_texts_topic,),
    }


def side_by_side_requested(argv: list[str] | None, service: str, model: str) -> bool:
    """Whether the worker's command line says ``--side-by-side``. An option, not a role:
    deployments run the usual worker; a side-by-side one runs only while a new ``model``
    is filled."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help=f"run the configured {model} next to the usual worker, in groups of its own",
    )
    return bool(parser.parse_args(argv).side_by_side)


def side_by_side(model: str) -> str:
    """The group suffix of a worker that runs ``model`` next to the stage's usual one
    (a new text model being filled before it is activated): its own offsets, so both
    workers see every message."""
    return "--" + re.sub(r"[^A-Za-z0-9._-]+", "-", model)


def backfill_group_of(stage: str) -> str:
    """A stage's backfill topics are read by a consumer of their own, in this group."""
    return f"{group_of(stage)}-backfill"


def consumer_groups(kafka: KafkaSettings) -> dict[str, tuple[str, ...]]:
    """Every consumer group of a deployment with the topics it reads (for lag)."""
    groups = {group_of(stage): topics for stage, topics in stage_topics(kafka).items()}
    for stage, topics in backfill_topics_of(kafka).items():
        groups[backfill_group_of(stage)] = topics
    return groups


def side_by_side_groups(
    kafka: KafkaSettings, group_ids: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """The side-by-side groups among ``group_ids`` (the groups the broker knows), each with
    the topics of the group it is named after (``glimpse-embed--<model>`` reads what
    ``glimpse-embed`` reads). Found on the broker because only the worker knows its model;
    tansu lists a group once it committed an offset."""
    usual = consumer_groups(kafka)
    found: dict[str, tuple[str, ...]] = {}
    for group in group_ids:
        base, sep, model = group.partition("--")
        if sep and model and base in usual:
            found[group] = usual[base]
    return found


def backfill_routes(kafka: KafkaSettings) -> dict[str, str]:
    """Each stage input topic → that stage's backfill topic. What a worker makes of
    backfill work goes on as backfill: ingest's accept of a backfilled photo is sent to
    caption's backfill topic, not among live uploads."""
    backfill = backfill_topics_of(kafka)
    return {
        topic: backfill[stage][0]
        for stage, topics in stage_topics(kafka).items()
        if stage in backfill
        for topic in topics
    }
