"""Caption quality of every captioner backend against captions people wrote.

    python -m bench.caption_quality [--blip DIR] [--trained ID_OR_DIR ...] [--no-record]

The photos of bench/quality_set.toml, each with five reference captions written after
looking at it, go through what the caption stage reads (ingest's 512-px thumbnail).
Scored per backend: BLEU-4 (sacrebleu) and CIDEr-D (coco-caption's scorer), and seconds
per image (one ``predict`` over the set after a warm-up image, load not included).

- labels: the offline default (ImageNet labels and their descriptions).
- blip: only from a local checkpoint (``--blip DIR``); none ships offline, and the tiny
  random BLIP the tests build says word salad, so without one it is not measured.
- trained, leave-one-out: ``glimpse captioner train``'s decoder trained on the
  references of the other 19 photos and asked about the one left out, for each photo
  in turn: what training on a hundred alt texts gives for a photo unlike any of them.
- ``--trained``: artifacts made by ``glimpse captioner train`` on other data.
Appends a dated Markdown section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from bench.common.caption_scores import CaptionScores, score_captions
from bench.common.quality_set import Photo, load_set
from bench.common.report import add_output_args, machine_info, publish, report_header, say, table
from glimpse.caption_training import TrainingSettings, train
from glimpse.config import ModelSettings
from glimpse.models import Captioner, load_captioner
from glimpse.models.device import limit_cpu_threads


@dataclass(frozen=True, slots=True)
class Measured:
    backend: str
    model: str
    captions: list[str]
    seconds_per_image: float
    scores: CaptionScores


def timed_captions(model: Captioner, images: Sequence[Image.Image]) -> tuple[list[str], float]:
    model.predict(images[:1])  # warm-up: first-call allocations are not per-image cost
    started = time.perf_counter()
    found = model.predict(images)
    return [a.caption for a in found], (time.perf_counter() - started) / len(images)


def measure(
    name: str, model: Captioner, photos: Sequence[Photo], images: list[Image.Image]
) -> Measured:
    say(f"{name}: loading {model.model_id} …")
    model.load()
    captions, per_image = timed_captions(model, images)
    scores = score_captions(captions, [p.references for p in photos])
    say(f"{name}: BLEU-4 {scores.bleu4:.1f}, CIDEr-D {scores.cider:.3f}, {per_image:.3f} s/image")
    return Measured(name, model.model_id, captions, per_image, scores)


def leave_one_out(
    backbone: Captioner, photos: Sequence[Photo], images: list[Image.Image], seed: int
) -> tuple[Measured, float]:
    """The decoder trained on the other photos' references, for each photo in turn;
    and the mean training seconds."""
    vectors = {p.id: a.visual for p, a in zip(photos, backbone.predict(images), strict=True)}
    captions, train_s, decode_s = [], [], []
    for photo in photos:
        others = {p.id: list(p.references) for p in photos if p.id != photo.id}
        started = time.perf_counter()
        trained = train(vectors, others, TrainingSettings(seed=seed))  # type: ignore[arg-type]
        train_s.append(time.perf_counter() - started)
        vector = torch.from_numpy(vectors[photo.id][None, :])  # type: ignore[index]
        trained.decoder.greedy(vector)  # warm-up, as for the other backends
        started = time.perf_counter()
        captions.append(trained.vocab.decode(trained.decoder.greedy(vector)[0]))
        decode_s.append(time.perf_counter() - started)
        say(f"  {photo.id}: {captions[-1]!r} (best epoch {trained.best_epoch}, "
            f"{train_s[-1]:.1f} s)")  # fmt: skip
    # per image: the backbone pass the labels backend timed, plus the decoder's greedy pass
    _, backbone_s = timed_captions(backbone, images)
    per_image = backbone_s + sum(decode_s) / len(decode_s)
    scores = score_captions(captions, [p.references for p in photos])
    say(f"trained (leave-one-out): BLEU-4 {scores.bleu4:.1f}, CIDEr-D {scores.cider:.3f}")
    return Measured("trained, leave-one-out", "trained/<19 photos>", captions, per_image,
                    scores), sum(train_s) / len(train_s)  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blip", help="a local BLIP checkpoint directory (save_pretrained)")
    parser.add_argument(
        "--trained",
        action="append",
        default=[],
        help="a trained captioner: artifact id or directory (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="leave-one-out training seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (glimpse up: 1)")
    add_output_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    limit_cpu_threads(args.threads)
    machine = machine_info(with_torch=True)
    photos = [p for p in load_set().photos if p.references]
    images = [p.thumbnail() for p in photos]
    say(f"{len(photos)} photos, {sum(len(p.references) for p in photos)} reference captions")
    results = []
    labels = load_captioner(ModelSettings(device="cpu"))
    results.append(measure("labels", labels, photos, images))
    if args.blip:
        blip = load_captioner(ModelSettings(captioner="blip", blip_model=args.blip, device="cpu"))
        results.append(measure("blip", blip, photos, images))
    for source in args.trained:
        settings = ModelSettings(captioner="trained", trained_captioner=source, device="cpu")
        results.append(measure("trained", load_captioner(settings), photos, images))
    loo, train_s = leave_one_out(labels, photos, images, args.seed)
    results.append(loo)

    lines = report_header("Caption quality (`python -m bench.caption_quality`)", machine)
    lines += [
        f"- set: {len(photos)} photos of bench/quality_set.toml, 5 reference captions each "
        "written by people after looking at the photo; ingest's 512-px thumbnails",
        "- BLEU-4: sacrebleu corpus BLEU (lower-cased, 13a), 0-100; CIDEr-D: pycocoevalcap's "
        "Cider (coco-caption; strong COCO captioners score ~1.1), words by glimpse's tokenizer",
        "- blip: " + (f"from {args.blip}" if args.blip else _NO_BLIP),
        f"- trained, leave-one-out: for each photo, the decoder trained (seed {args.seed}, "
        "defaults of `glimpse captioner train`) on the other photos' references; mean "
        f"training time {train_s:.1f} s per fold; s/image = backbone pass + greedy decode",
        "",
        table(
            ["backend", "model", "BLEU-4", "CIDEr-D", "s/image"],
            [_row(r) for r in results],
        ),
        "",
        "Captions per photo:",
        "",
        table(
            ["photo", *(r.backend for r in results)],
            [[p.id, *(_cell(r.captions[i]) for r in results)] for i, p in enumerate(photos)],
        ),
    ]
    publish("\n".join(lines) + "\n", args)


_NO_BLIP = (
    "not measured: no local checkpoint (none ships offline; the tests' tiny BLIP has "
    "random weights and says word salad)"
)


def _row(r: Measured) -> list[str]:
    return [r.backend, f"`{r.model}`", f"{r.scores.bleu4:.1f}", f"{r.scores.cider:.3f}",
            f"{r.seconds_per_image:.3f}"]  # fmt: skip


def _cell(caption: str, chars: int = 90) -> str:
    text = caption if len(caption) <= chars else caption[: chars - 1] + "…"
    return text.replace("|", "/")


if __name__ == "__main__":
    main()
