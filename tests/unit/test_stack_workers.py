"""The embedded stack's worker recipe: replicas of the model workers share the cores."""

from __future__ import annotations

from glimpse.config import Settings
from glimpse.stack.workers import RECIPES, idle_replicas, model_threads, worker_env


def settings(**replicas: int) -> Settings:
    s = Settings()
    s.stack.replicas = s.stack.replicas.model_validate(replicas)
    return s


def test_caption_and_embed_split_the_cores_between_all_their_processes() -> None:
    assert model_threads(settings(), 8)["caption"] == 4
    assert model_threads(settings(), 8)["embed"] == 4
    four_captions = model_threads(settings(caption=3), 8)
    assert four_captions["caption"] == four_captions["embed"] == 2
    assert model_threads(settings(caption=4, embed=4), 2)["caption"] == 1  # never 0


def test_one_transcriber_keeps_every_core_and_replicas_share_them() -> None:
    assert model_threads(settings(), 8)["transcribe"] == 0  # the library's default
    assert model_threads(settings(transcribe=2), 8)["transcribe"] == 4


def test_configured_threads_win() -> None:
    s = settings(caption=4)
    s.models.torch_threads = 3
    assert set(model_threads(s, 8).values()) == {3}


def test_each_replica_runs_its_stage_module_with_its_environment() -> None:
    s = settings(caption=2)
    assert worker_env("caption", s, 6) == {"GLIMPSE_MODELS__TORCH_THREADS": "2"}
    assert worker_env("embed", s, 6) == {
        "GLIMPSE_WORKER__MAX_BATCH": "64",
        "GLIMPSE_MODELS__TORCH_THREADS": "2",
    }
    assert worker_env("ingest", s, 6) == {}
    assert RECIPES["transcribe-queries"].args == ("queries",)


def test_replicas_beyond_the_partitions_of_existing_topics_are_found(memory_broker: str) -> None:
    from glimpse.bus import all_topics, ensure_topics, topic_partitions

    s = settings(caption=4, embed=3)
    s.kafka.bootstrap = memory_broker
    s.kafka.partitions = 3
    ensure_topics(s.kafka, all_topics(s.kafka))
    existing = topic_partitions(s.kafka, all_topics(s.kafka))
    assert idle_replicas(s, existing) == {"caption": (4, 3)}
    # a stage reading several topics is held to the one with the fewest partitions
    assert idle_replicas(s, {**existing, s.kafka.transcripts_ready_topic: 2}) == {
        "caption": (4, 3),
        "embed": (3, 2),
    }
