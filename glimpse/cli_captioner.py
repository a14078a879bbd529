"""``glimpse captioner train``: a captioner of your own, from image-caption pairs.

    glimpse captioner train --pairs alt-texts.csv --name shop     # -> artifact shop-<rev>
    GLIMPSE_MODELS__CAPTIONER=trained GLIMPSE_MODELS__TRAINED_CAPTIONER=shop-<rev>

The artifact is saved under ``models.cache_dir`` (default ``GLIMPSE_HOME/models``)
``/captioners/`` or ``--out``, and with ``--publish`` also in the bucket, where caption
workers on other hosts fetch it by its id. Model code is imported inside the command:
``glimpse.cli`` imports this module for every command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from glimpse.cli_common import fail, resolved
from glimpse.config import Settings

if TYPE_CHECKING:
    from glimpse.caption_training import Epoch, Trained

captioner_app = typer.Typer(
    help="Captioners of your own: train one on image-caption pairs.", no_args_is_help=True
)
console = Console(stderr=True)
out = Console()


@captioner_app.command("train")
def train_command(
    pairs: Annotated[
        Path,
        typer.Option(
            help="CSV (columns image,caption) or JSONL of image path or bucket key and "
            "caption; several captions per image allowed."
        ),
    ],
    name: Annotated[str, typer.Option(help="Names the artifact: <name>-<revision>.")] = "captioner",
    epochs: Annotated[int, typer.Option(min=1, help="At most this many epochs.")] = 40,
    patience: Annotated[
        int, typer.Option(min=1, help="Stop after this many epochs without a better BLEU.")
    ] = 5,
    validation: Annotated[
        float, typer.Option(min=0.05, max=0.5, help="Share of the images held out.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Same pairs, settings and seed: same model.")] = 0,
    output: Annotated[
        Path | None,
        typer.Option("--out", help="Save the artifact here instead of the model cache."),
    ] = None,
    publish: Annotated[
        bool, typer.Option("--publish", help="Also upload it to the bucket (stack running).")
    ] = False,
) -> None:
    """Train a captioner: the image backbone's features feed a small GRU decoder."""
    from glimpse.caption_pairs import PairsError, load_images, read_pairs
    from glimpse.caption_training import TrainingError, TrainingSettings, train, visual_vectors
    from glimpse.models import caption_artifact
    from glimpse.models.captioning import load_captioner
    from glimpse.models.device import limit_cpu_threads
    from glimpse.models.whisper_assets import resolve_cache_root
    from glimpse.storage import ObjectStore

    settings = Settings()
    started = time.perf_counter()
    try:
        caption_artifact.check_name(name)
        found = read_pairs(pairs)
        local = all(found.local_path(image) for image in found.captions)
        # The bucket is asked only when it is needed: keys in the file, or --publish.
        store = ObjectStore(resolved().s3) if publish or not local else None
        images = load_images(found, settings.limits.thumbnail_px, store.read if store else None)
    except (PairsError, caption_artifact.ArtifactError) as exc:
        fail(str(exc))
    captions = sum(len(c) for c in found.captions.values())
    console.print(f"{captions} captions of {len(images)} images from {pairs}")
    limit_cpu_threads(settings.models.torch_threads)
    backbone = load_captioner(settings.models.model_copy(update={"captioner": "labels"}))
    backbone.load()
    features = visual_vectors(backbone, images)
    training = TrainingSettings(seed=seed, epochs=epochs, patience=patience,
                                validation_fraction=validation)  # fmt: skip
    table = _epoch_table()
    try:
        with Live(table, console=console, auto_refresh=False) as live:

            def show(epoch: Epoch) -> None:
                table.add_row(str(epoch.number), f"{epoch.train_loss:.3f}",
                              f"{epoch.validation_loss:.3f}", f"{epoch.validation_bleu:.1f}",
                              f"{epoch.seconds:.1f}")  # fmt: skip
                live.refresh()

            trained = train(features, found.captions, training, on_epoch=show)
    except TrainingError as exc:
        fail(str(exc))
    seconds = time.perf_counter() - started
    root = output or resolve_cache_root(settings.models, settings.home) / "captioners"
    config = {"backbone": backbone.model_id, "backbone_revision": backbone.revision, "seed": seed}
    directory = caption_artifact.save(
        root, name, trained.decoder, trained.vocab, config, trained.metrics(training, seconds)
    )
    _summary(trained, seconds)
    if store is not None and publish:
        prefix = caption_artifact.publish(store, directory)
        console.print(f"published to s3://{store.bucket}/{prefix}")
    console.print(f"saved {directory}")
    source = directory.name if output is None else str(directory)
    console.print(
        "caption with it: GLIMPSE_MODELS__CAPTIONER=trained "
        f"GLIMPSE_MODELS__TRAINED_CAPTIONER={source}  (model id trained/{directory.name})"
    )
    out.print(directory.name)


def _epoch_table() -> Table:
    table = Table(title="training (validation BLEU-4 of greedy captions, 0-100)")
    for column in ("epoch", "train loss", "val loss", "val BLEU-4", "seconds"):
        table.add_column(column, justify="right")
    return table


def _summary(trained: Trained, seconds: float) -> None:
    best = trained.best
    console.print(
        f"best epoch {best.number} of {len(trained.history)}: validation BLEU-4 "
        f"{best.validation_bleu:.1f} (always answering {trained.constant_caption!r}: "
        f"{trained.constant_bleu:.1f}); {len(trained.train_images)} training and "
        f"{len(trained.validation_images)} validation images, {len(trained.vocab)} words, "
        f"{seconds:.1f} s"
    )
    for image, caption in trained.samples[:5]:
        console.print(f"  {image}: {caption}")
