"""``python -m services.embed``: the text-embedding worker."""

from __future__ import annotations

from glimpse import dependencies
from glimpse.config import Settings
from glimpse.db.pool import open_pool
from glimpse.logs import configure_logging
from glimpse.metrics import EmbedMetrics, ModelMetrics, WorkerMetrics
from glimpse.models.device import limit_cpu_threads
from glimpse.models.text import load_text_embedder
from glimpse.runtime import ServiceSpec, run_service
from glimpse.stages import backfill_topics_of, stage_topics
from services.embed.handler import EmbedHandler


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "embed")
    limit_cpu_threads(settings.models.torch_threads)
    kafka = settings.kafka
    spec = ServiceSpec(
        "embed",
        stage_topics(kafka)["embed"],
        backfill_topics=backfill_topics_of(kafka)["embed"],
    )

    metrics = WorkerMetrics()
    embed_metrics = EmbedMetrics(metrics.registry)
    models = ModelMetrics(metrics.registry, spec.name)

    def make_handler() -> EmbedHandler:
        return EmbedHandler(
            pool=open_pool(settings.database, "embed"),
            embedder=load_text_embedder(settings.models).report_to(models),
            metrics=embed_metrics,
        )

    run_service(
        spec,
        make_handler,
        settings.kafka,
        settings.worker,
        metrics,
        settings.database,
        dependencies=dependencies.of(settings, needs_s3=False),
    )


if __name__ == "__main__":
    main()
