"""``python -m services.ingest``: the ingest worker."""

from __future__ import annotations

from glimpse import dependencies
from glimpse.config import Settings
from glimpse.db.pool import open_pool
from glimpse.logs import configure_logging
from glimpse.malloc import release_large_frees
from glimpse.metrics import IngestMetrics, WorkerMetrics
from glimpse.runtime import ServiceSpec, run_service
from glimpse.stages import backfill_topics_of, stage_topics
from glimpse.storage import ObjectStore
from services.ingest.handler import IngestHandler


def main() -> None:
    release_large_frees()  # before any thread allocates: decodes are large
    settings = Settings()
    configure_logging(settings.log_level, "ingest")
    metrics = WorkerMetrics()
    ingest_metrics = IngestMetrics(metrics.registry)
    spec = ServiceSpec(
        "ingest",
        stage_topics(settings.kafka)["ingest"],
        backfill_topics=backfill_topics_of(settings.kafka)["ingest"],
    )

    def make_handler() -> IngestHandler:
        return IngestHandler(
            store=ObjectStore(settings.s3),
            pool=open_pool(settings.database, "ingest"),
            limits=settings.limits,
            kafka=settings.kafka,
            metrics=ingest_metrics,
            concurrency=settings.worker.concurrency,
            ingest=settings.ingest,
        )

    run_service(
        spec,
        make_handler,
        settings.kafka,
        settings.worker,
        metrics,
        settings.database,
        dependencies=dependencies.of(settings),
    )


if __name__ == "__main__":
    main()
