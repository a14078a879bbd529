"""``python -m services.caption``: the caption worker."""

from __future__ import annotations

from glimpse import dependencies
from glimpse.config import Settings
from glimpse.db.pool import open_pool
from glimpse.logs import configure_logging
from glimpse.metrics import ModelMetrics, WorkerMetrics
from glimpse.model_specs import spec_of
from glimpse.models.captioning import load_captioner
from glimpse.models.cues import CueReader
from glimpse.models.device import limit_cpu_threads
from glimpse.runtime import ServiceSpec, run_service
from glimpse.stages import backfill_topics_of, stage_topics
from glimpse.storage import ObjectStore
from services.caption.handler import CaptionHandler


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "caption")
    limit_cpu_threads(settings.models.torch_threads)
    spec = ServiceSpec(
        "caption",
        stage_topics(settings.kafka)["caption"],
        backfill_topics=backfill_topics_of(settings.kafka)["caption"],
    )

    metrics = WorkerMetrics()
    models = ModelMetrics(metrics.registry, spec.name)

    def make_handler() -> CaptionHandler:
        store = ObjectStore(settings.s3)
        captioner = load_captioner(settings.models, settings.home, store)
        return CaptionHandler(
            store=store,
            pool=open_pool(settings.database, "caption"),
            captioner=captioner.report_to(models),
            kafka=settings.kafka,
            limits=settings.limits,
            cues=CueReader(settings.cues, models)
            if settings.cues.ocr or settings.cues.colours
            else None,
            spec=spec_of("captioner", settings.models),
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
