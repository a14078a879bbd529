"""``python -m services.transcribe [uploads|queries|all]``: the speech-to-text worker.

Voice queries have a person waiting; uploaded audio may be hours long. Run as two
workers (``uploads`` and ``queries``, each its own consumer group) so a search never
queues behind a long voice note; ``all`` reads both topics in one process.
"""

from __future__ import annotations

import sys

from glimpse import dependencies
from glimpse.config import KafkaSettings, Settings, WorkerSettings
from glimpse.db.pool import open_pool
from glimpse.logs import configure_logging
from glimpse.malloc import release_large_frees
from glimpse.metrics import ModelMetrics, WorkerMetrics
from glimpse.model_specs import spec_of
from glimpse.models.speech import load_transcriber
from glimpse.runtime import ServiceSpec, run_service
from glimpse.stages import backfill_topics_of, stage_topics
from glimpse.storage import ObjectStore
from glimpse.vocabulary import LibraryVocabulary
from services.transcribe.handler import TranscribeHandler

ROLES = ("uploads", "queries", "all")


def service_spec(role: str, settings: Settings) -> ServiceSpec:
    kafka = settings.kafka
    # An upload may hold hours of audio; whisper runs well under real time even on a
    # small CPU (RTF 0.16-0.56 on 2 cores), so the audio's length plus a margin bounds it.
    longest = settings.limits.max_audio_seconds + 600
    backfill = backfill_topics_of(kafka)
    if role == "uploads":
        return ServiceSpec(
            "transcribe", stage_topics(kafka)["transcribe"], longest, backfill["transcribe"]
        )
    if role == "queries":
        return ServiceSpec("transcribe-queries", stage_topics(kafka)["transcribe-queries"])
    topics = (kafka.audio_accepted_topic, kafka.voice_queries_topic)
    return ServiceSpec("transcribe-all", topics, longest, backfill["transcribe"])


def role_settings(role: str, settings: Settings) -> tuple[WorkerSettings, KafkaSettings]:
    """The worker loop's and the consumer's settings for ``role``."""
    # One clip per batch: whisper uses every core for one clip anyway, and a batch of
    # long notes would hold its offsets for hours. For queries, never wait to fill one,
    # and let the broker answer empty fetches sooner: someone waits for each message.
    worker = settings.worker.model_copy(update={"max_batch": 1})
    if role != "queries":
        return worker, settings.kafka
    wait = settings.voice.fetch_max_wait_ms
    return (
        worker.model_copy(update={"max_wait_ms": 0}),
        settings.kafka.model_copy(update={"fetch_max_wait_ms": wait}),
    )


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    role = args[0] if args else "all"
    if role not in ROLES:
        sys.exit(f"usage: python -m services.transcribe [{'|'.join(ROLES)}]")
    if role != "queries":
        # windows of long notes' audio and features come and go; a query's short clip
        # does not need it, and with it whisper took 1.3x as long (bench/RESULTS.md)
        release_large_frees()
    settings = Settings()
    spec = service_spec(role, settings)
    configure_logging(settings.log_level, spec.name)
    worker, kafka = role_settings(role, settings)

    metrics = WorkerMetrics()
    models = ModelMetrics(metrics.registry, spec.name)

    def make_handler() -> TranscribeHandler:
        pool = open_pool(settings.database, spec.name)
        voice = settings.voice
        return TranscribeHandler(
            store=ObjectStore(settings.s3),
            pool=pool,
            transcriber=load_transcriber(settings.models, home=settings.home).report_to(models),
            kafka=settings.kafka,
            limits=settings.limits,
            voice=voice,
            vocabulary=LibraryVocabulary(pool, voice.vocabulary_words, voice.vocabulary_refresh_s),
            spec=spec_of("transcriber", settings.models),
        )

    run_service(
        spec,
        make_handler,
        kafka,
        worker,
        metrics,
        settings.database,
        dependencies=dependencies.of(settings),
    )


if __name__ == "__main__":
    main()
