"""Custom labels on handwritten digits: accuracy and training time against examples per
label, and what tagging adds to the caption stage.

    python -m bench.labels [--per-label 5,20,100] [--size 64] [--margin 16] [--vectors FILE]

Each of scikit-learn's 1,797 8x8 scans is rendered dark on white, upscaled to ``--size``
px on a white ``--margin``, then goes the pipeline's way: ingest's validation and 512-px
thumbnail, the caption stage's decode, one forward pass of the labels captioner (EfficientNet-Lite0)
— timed, per image. A fixed stratified 30 % is the test set; heads are trained
(``glimpse.labels.training.train``: its own held-out split, then a refit on all) on N
examples per label drawn from the rest and scored on the test set. Tagging is timed as
the caption stage runs it (``tags_for`` on a batch's vectors) and set against the forward
pass. ``--vectors FILE`` keeps the vectors in a ``.npy`` to re-run without the model.
"""

from __future__ import annotations

import argparse
import io
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from bench.common.quiet import OtherLoad
from bench.common.report import add_output_args, machine_info, publish, report_header, say, table
from glimpse.config import LimitsSettings, ModelSettings
from glimpse.db.label_sets import Version
from glimpse.labels.head import LabelHead, predict
from glimpse.labels.tagging import tags_for
from glimpse.labels.training import Examples, train
from glimpse.media import validate_media
from glimpse.media.thumbnail import decode_thumbnail
from glimpse.models.captioning import load_captioner
from glimpse.models.device import limit_cpu_threads

TEST_SHARE = 0.3


def digit_png(pixels: np.ndarray, size: int, margin: int) -> bytes:
    grey = (255 - pixels / 16 * 255).astype(np.uint8)
    image = Image.fromarray(grey, "L").resize((size, size), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    ImageOps.expand(image, border=margin, fill=255).convert("RGB").save(out, "PNG")
    return out.getvalue()


def visual_vectors(images: np.ndarray, size: int, margin: int) -> tuple[np.ndarray, float]:
    """Vectors as the pipeline makes them, and the forward pass's mean seconds per image."""
    captioner = load_captioner(ModelSettings(device="cpu"))
    captioner.load()
    found, model_s = [], 0.0
    for n, pixels in enumerate(images, start=1):
        thumbnail = validate_media(digit_png(pixels, size, margin), LimitsSettings()).thumbnail
        assert thumbnail is not None
        image = decode_thumbnail(thumbnail)
        began = time.perf_counter()
        [analysis] = captioner.predict([image])
        model_s += time.perf_counter() - began
        assert analysis.visual is not None
        found.append(analysis.visual)
        if n % 300 == 0:
            say(f"{n}/{len(images)} visual vectors")
    return np.stack(found), model_s / len(images)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-label", default="5,20,100", help="examples per label to try")
    parser.add_argument("--size", type=int, default=64, help="rendered digit side, px")
    parser.add_argument("--margin", type=int, default=16, help="white margin around it, px")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--vectors", type=Path, help="a .npy of the vectors (kept, reused)")
    add_output_args(parser)
    args = parser.parse_args(argv)
    limit_cpu_threads(args.threads)
    machine = machine_info(with_torch=True)
    digits = load_digits()
    labels = np.array([str(t) for t in digits.target])
    with OtherLoad() as others:
        source = "computed in this run"
        if args.vectors and args.vectors.exists():
            vectors = np.load(args.vectors)
            source = f"read from {args.vectors.name} (an earlier run's, same code path)"
            _, model_s = visual_vectors(
                digits.images[:40], args.size, args.margin
            )  # the timing only
        else:
            vectors, model_s = visual_vectors(digits.images, args.size, args.margin)
            if args.vectors:
                np.save(args.vectors, vectors)
        pool, test = train_test_split(np.arange(len(labels)), test_size=TEST_SHARE,
                                      stratify=labels, random_state=0)  # fmt: skip
        rows = []
        sizes = [int(n) for n in args.per_label.split(",")] + [0]  # 0: the whole pool
        for per_label in sizes:
            picked = _pick(pool, labels, per_label)
            began = time.perf_counter()
            trained = train(Examples(vectors[picked], list(labels[picked]), []), "bench")
            train_s = time.perf_counter() - began
            right = [p[0][0] for p in predict(trained.head, vectors[test], top=1)]
            accuracy = float(np.mean(np.array(right) == labels[test]))
            rows.append([str(per_label) if per_label else f"all ({len(picked) // 10})",
                         str(len(picked)), f"{trained.metrics['accuracy']:.1%}",
                         f"{accuracy:.1%}", f"{train_s:.2f}"])  # fmt: skip
        tag_s = _tagging_seconds(trained.head, vectors)
    machine["during the run"] = f"other processes used {others.share:.0%} of the machine's CPU"
    out = report_header("Custom labels: handwritten digits", machine)
    out += [
        f"- **command**: `python -m bench.labels --per-label {args.per_label} "
        f"--size {args.size} --margin {args.margin}`; digits rendered {args.size}x{args.size} "
        f"px with a {args.margin}-px white margin, test set "
        f"{len(test)} digits (stratified {TEST_SHARE:.0%}), never trained on; vectors "
        f"{source}",
        "",
        table(["examples per label", "examples", "own held-out accuracy",
               f"test-set accuracy ({len(test)})", "train s (split, fit, refit)"], rows),
        "",
        f"Tagging (`tags_for`, one 10-label set, batches of 16): {tag_s * 1e6:.0f} µs per "
        f"image; the forward pass it rides on: {model_s * 1e3:.0f} ms per image "
        f"(**{tag_s / model_s:.2%}** of it; goal ≤ 5 %).",
    ]  # fmt: skip
    publish("\n".join(out) + "\n", args)


def _pick(pool: np.ndarray, labels: np.ndarray, per_label: int) -> np.ndarray:
    if not per_label:
        return pool
    rng = np.random.default_rng(0)
    return np.concatenate([rng.permutation(pool[labels[pool] == d])[:per_label]
                           for d in sorted(set(labels))])  # fmt: skip


def _tagging_seconds(head: LabelHead, vectors: np.ndarray, batch: int = 16) -> float:
    """Mean seconds per image of tagging batches of ``batch`` vectors."""
    version = Version("bench", 1, "bench", [], {}, 0, "", "", datetime.now(UTC))
    loaded = [(version, head)]
    ids = [uuid.uuid4() for _ in range(batch)]
    began = time.perf_counter()
    for start in range(0, len(vectors) - batch + 1, batch):
        tags_for(loaded, ids, vectors[start : start + batch])
    return (time.perf_counter() - began) / (len(vectors) // batch * batch)


if __name__ == "__main__":
    main()
