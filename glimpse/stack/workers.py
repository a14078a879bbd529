"""glimpse's worker processes in the embedded stack: what each stage runs (module,
arguments, environment) and how replicas of the model workers share the cores.
Which replicas there are and their ports: ``glimpse.stack.ports.worker_replicas``."""

from __future__ import annotations

from dataclasses import dataclass, field

from glimpse.config import Settings
from glimpse.stages import stage_topics


@dataclass(frozen=True, slots=True)
class WorkerRecipe:
    module: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


RECIPES = {
    "ingest": WorkerRecipe("services.ingest"),
    "caption": WorkerRecipe("services.caption"),
    # text embedding pays off in bigger batches than images do
    "embed": WorkerRecipe("services.embed", env={"GLIMPSE_WORKER__MAX_BATCH": "64"}),
    # two speech roles: a voice search never waits behind a long voice note
    "transcribe": WorkerRecipe("services.transcribe", ("uploads",)),
    "transcribe-queries": WorkerRecipe("services.transcribe", ("queries",)),
}

# Stages whose models run at the same time on the image path, so they split the cores.
_IMAGE_MODELS = ("caption", "embed")


def model_threads(s: Settings, cores: int) -> dict[str, int]:
    """CPU threads of one model process per stage (0: the library's default, every core).
    More threads than cores made caption and embed spin and halved the pipeline
    (bench/RESULTS.md): caption and embed replicas share the cores equally; transcribe
    replicas share them among themselves (one voice note at a time keeps every core)."""
    if s.models.torch_threads:
        return dict.fromkeys(RECIPES, s.models.torch_threads)
    replicas = s.stack.replicas
    image_processes = replicas.caption + replicas.embed
    threads = dict.fromkeys(RECIPES, 0)
    for stage in _IMAGE_MODELS:
        threads[stage] = max(1, cores // image_processes)
    if replicas.transcribe > 1:
        threads["transcribe"] = max(1, cores // replicas.transcribe)
    return threads


def worker_env(stage: str, s: Settings, cores: int) -> dict[str, str]:
    """What a replica of ``stage`` gets besides the resolved settings."""
    env = dict(RECIPES[stage].env)
    threads = model_threads(s, cores)[stage]
    if threads:
        env["GLIMPSE_MODELS__TORCH_THREADS"] = str(threads)
    return env


def idle_replicas(s: Settings, partitions: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Stages with more replicas than the fewest partitions of their topics (``partitions``:
    per topic, as they exist): stage -> (replicas, partitions). The extra replicas get no
    partition and idle."""
    idle = {}
    for stage, topics in stage_topics(s.kafka).items():
        fewest = min(partitions.get(topic, 0) for topic in topics)
        if s.stack.replicas.of(stage) > fewest:
            idle[stage] = (s.stack.replicas.of(stage), fewest)
    return idle
