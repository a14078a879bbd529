"""``python -m services.caption [--side-by-side]``: the caption worker.

``--side-by-side`` runs the configured captioner next to the stage's usual worker, in
consumer groups of its own (suffixed with the model id): it captions every live image
and what ``glimpse backfill --stage caption --model ID`` sends, while search keeps
serving the active captioner, until ``glimpse models activate captioner ID``.
"""

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
from glimpse.models.joint import load_joint_model
from glimpse.runtime import ServiceSpec, run_service
from glimpse.stages import (
    backfill_topics_of,
    side_by_side,
    side_by_side_requested,
    stage_topics,
)
from glimpse.storage import ObjectStore
from services.caption.handler import CaptionHandler


def main(argv: list[str] | None = None) -> None:
    side_by_side_mode = side_by_side_requested(argv, "caption", "captioner")
    settings = Settings()
    configure_logging(settings.log_level, "caption")
    limit_cpu_threads(settings.models.torch_threads)
    store = ObjectStore(settings.s3)
    captioner = load_captioner(settings.models, settings.home, store)  # the id is known
    spec = ServiceSpec(
        "caption",
        stage_topics(settings.kafka)["caption"],
        backfill_topics=backfill_topics_of(settings.kafka)["caption"],
        group_suffix=side_by_side(captioner.model_id) if side_by_side_mode else "",
    )

    metrics = WorkerMetrics()
    models = ModelMetrics(metrics.registry, spec.name)

    def make_handler() -> CaptionHandler:
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
            joint=joint.report_to(models) if (joint := load_joint_model(settings.models)) else None,
            joint_spec=spec_of("joint", settings.models),
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
