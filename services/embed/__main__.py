"""``python -m services.embed [--side-by-side]``: the text-embedding worker.

``--side-by-side`` runs the configured text model next to the stage's usual worker, in
consumer groups of its own (suffixed with the model id): it embeds every live text and
what ``glimpse backfill --stage embed --model ID`` sends, while search keeps serving the
active model, until ``glimpse models activate text ID``.
"""

from __future__ import annotations

from glimpse import dependencies
from glimpse.config import Settings
from glimpse.db.pool import open_pool
from glimpse.logs import configure_logging
from glimpse.metrics import EmbedMetrics, ModelMetrics, WorkerMetrics
from glimpse.model_specs import spec_of
from glimpse.models.device import limit_cpu_threads
from glimpse.models.text import load_text_embedder
from glimpse.runtime import ServiceSpec, run_service
from glimpse.stages import (
    backfill_topics_of,
    side_by_side,
    side_by_side_requested,
    stage_topics,
)
from services.embed.handler import EmbedHandler


def main(argv: list[str] | None = None) -> None:
    side_by_side_mode = side_by_side_requested(argv, "embed", "text model")
    settings = Settings()
    configure_logging(settings.log_level, "embed")
    limit_cpu_threads(settings.models.torch_threads)
    kafka = settings.kafka
    embedder = load_text_embedder(settings.models)  # not loaded yet: the id is known
    spec = ServiceSpec(
        "embed",
        stage_topics(kafka)["embed"],
        backfill_topics=backfill_topics_of(kafka)["embed"],
        group_suffix=side_by_side(embedder.model_id) if side_by_side_mode else "",
    )

    metrics = WorkerMetrics()
    embed_metrics = EmbedMetrics(metrics.registry)
    models = ModelMetrics(metrics.registry, spec.name)

    def make_handler() -> EmbedHandler:
        return EmbedHandler(
            pool=open_pool(settings.database, "embed"),
            embedder=embedder.report_to(models),
            metrics=embed_metrics,
            spec=spec_of("text", settings.models),
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
