"""Model benchmark: captioner batching, and int8 vs fp32 text embeddings.

    python -m bench.models [--images 64] [--rounds 2] [--no-record]

1. Captioners through ``load_captioner`` and ``Captioner.predict`` (the caption
   worker's path), on ~64 photo thumbnails made from scikit-image's sample photos
   (crops, flips, 512 px and 320 px long side): images/s one at a time
   (``batch_size = 1``) vs in batches of 16, in the same run, for the ``labels``
   backend (EfficientNet-Lite0) and, when tests/models_fixtures.py exists, for the tiny
   random BLIP it builds (a stand-in for BLIP's shape: a vision encoder, then greedy
   generation token by token; its absolute speed says nothing about the real model).
2. The text embedder (all-MiniLM-L6-v2) in fp32 and int8 (``ModelSettings(
   text_quantize=True)``): captions/s in batches of 64 over a caption corpus, one-query
   latency, and how far int8 changes search results (top-10 overlap of query → corpus
   rankings, and caption → caption as ``ranking_agreement`` measures it).

Prints Markdown tables and appends them, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from bench.common.fixtures import load_fixtures
from bench.common.quiet import OtherLoad
from bench.common.report import (
    add_output_args,
    machine_info,
    publish,
    report_header,
    say,
    table,
)
from glimpse.config import ModelSettings
from glimpse.models.captioning import Captioner, load_captioner
from glimpse.models.imagenet import CaptionStyle, ImageNetVocabulary, compose_caption
from glimpse.models.text import BATCH_SIZE, TextEmbedder, load_text_embedder, top_k_overlap

BATCH = 16
GOAL_BATCH_SPEEDUP = 2.0
GOAL_INT8_SPEEDUP = 2.0
GOAL_OVERLAP = 0.95
# scikit-image's sample photos with colour (grey ones are converted, as uploads are)
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "camera.png",
    "horse.png",
    "page.png",
)
Floats = npt.NDArray[np.float32]

# --- images --------------------------------------------------------------------------


def sample_photos() -> list[Image.Image]:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-image (a dev dependency) is not installed")
    folder = Path(spec.origin).parent / "data"
    photos = []
    for name in PHOTOS:
        path = folder / name
        if path.is_file():
            with Image.open(path) as image:
                photos.append(image.convert("RGB"))
    return photos


def thumbnails(count: int, seed: int) -> list[Image.Image]:
    """``count`` varied thumbnails: a random crop (50-100 % of each side), sometimes
    mirrored, scaled to a 512 px long side (glimpse's thumbnail size) or 320 px."""
    rng = np.random.default_rng(seed)
    photos = sample_photos()
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        width, height = photo.size
        w = int(width * rng.uniform(0.5, 1.0))
        h = int(height * rng.uniform(0.5, 1.0))
        left = int(rng.integers(0, width - w + 1))
        top = int(rng.integers(0, height - h + 1))
        image = photo.crop((left, top, left + w, top + h))
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        side = 512 if rng.random() < 0.75 else 320
        scale = side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        out.append(image.resize(size, Image.Resampling.BICUBIC))
    return out


# --- captioners ----------------------------------------------------------------------


@dataclass
class BatchResult:
    name: str
    images: int
    one_s: float  # best of the rounds, all images, batch_size 1
    batch_s: float  # best of the rounds, all images, batch_size BATCH
    configured_batch: int  # what the captioner chose for itself on this device
    same_captions: float  # share of images captioned identically both ways

    @property
    def speedup(self) -> float:
        return self.one_s / self.batch_s


def bench_captioner(
    name: str, captioner: Captioner, images: Sequence[Image.Image], rounds: int
) -> BatchResult:
    captioner.load()
    configured = captioner.batch_size
    captioner.batch_size = 1
    captioner.predict(list(images[:4]))  # warm-up: first passes allocate
    times: dict[int, list[float]] = {1: [], BATCH: []}
    captions: dict[int, list[str]] = {}
    for _ in range(rounds):
        for batch in (1, BATCH):  # alternate, so drift hits both alike
            captioner.batch_size = batch
            started = time.perf_counter()
            results = captioner.predict(list(images))
            times[batch].append(time.perf_counter() - started)
            captions[batch] = [r.caption for r in results]
    captioner.batch_size = configured
    same = np.mean([a == b for a, b in zip(captions[1], captions[BATCH], strict=True)])
    return BatchResult(name, len(images), min(times[1]), min(times[BATCH]), configured, float(same))


# --- text embeddings -----------------------------------------------------------------

_SCENES = (
    "a {adj} {noun} on a {place}",
    "a {noun} next to a {noun2} in the {place}",
    "two {noun}s {verb} near the {place}",
    "a close up of a {adj} {noun}",
    "a man holding a {noun} in front of a {place}",
    "a woman {verb} with a {adj} {noun2}",
    "a {noun} sitting on top of a {noun2}",
    "an old {noun} by the {place} at night",
)
_ADJ = [
    "red",
    "blue",
    "small",
    "large",
    "old",
    "wooden",
    "white",
    "black",
    "green",
    "shiny",
    "wet",
    "empty",
    "busy",
]
_NOUN = [
    "dog",
    "cat",
    "bicycle",
    "car",
    "cup",
    "plate",
    "bird",
    "boat",
    "chair",
    "table",
    "horse",
    "guitar",
    "laptop",
    "phone",
    "bus",
    "train",
    "umbrella",
    "clock",
    "flower",
    "tree",
    "kite",
    "pizza",
    "cake",
    "bottle",
    "bench",
]
_PLACE = [
    "beach",
    "street",
    "table",
    "kitchen",
    "park",
    "field",
    "river",
    "road",
    "window",
    "desk",
    "garden",
    "market",
]
_VERB = ["playing", "walking", "standing", "running", "sitting", "talking", "eating", "looking"]


def caption_corpus(count: int, seed: int) -> list[str]:
    """What glimpse stores: three in four like the labels backend writes them (label
    names, then the first sentences of two ImageNet descriptions), one in four BLIP-like
    sentences."""
    rng = np.random.default_rng([seed, 10])
    vocabulary = ImageNetVocabulary.load()
    names, descriptions = vocabulary.names, vocabulary.descriptions
    corpus = []
    for i in range(count):
        if i % 4 == 3:
            corpus.append(_scene(rng))
            continue
        picks = rng.choice(len(names), size=int(rng.integers(1, 4)), replace=False)
        labels = [(names[p], 1.0) for p in picks]
        corpus.append(compose_caption(labels, [descriptions[p] for p in picks], CaptionStyle()))
    return corpus


def _scene(rng: np.random.Generator) -> str:
    def pick(words: Sequence[str]) -> str:
        return str(words[int(rng.integers(len(words)))])

    template = pick(_SCENES)
    return template.format(
        adj=pick(_ADJ), noun=pick(_NOUN), noun2=pick(_NOUN), place=pick(_PLACE), verb=pick(_VERB)
    )


def typed_queries(count: int, seed: int) -> list[str]:
    """What people type: a label name, a short phrase, or a scene."""
    rng = np.random.default_rng([seed, 11])
    names = ImageNetVocabulary.load().names
    queries = []
    for i in range(count):
        name = str(names[int(rng.integers(len(names)))])
        queries.append(
            (name, f"photo of a {name}", _scene(rng), f"{name} on a {_PLACE[i % len(_PLACE)]}")[
                i % 4
            ]
        )
    return queries


@dataclass
class TextResult:
    corpus: int
    corpus_chars: float
    queries: int
    fp32_s: float
    int8_s: float
    short: int
    short_chars: float
    short_fp32_s: float
    short_int8_s: float
    fp32_query_ms: float
    int8_query_ms: float
    query_overlap: float  # query → corpus top-10, int8 vs fp32
    query_overlap_min: float
    caption_overlap: float  # caption → caption top-10 (ranking_agreement)
    cosine_mean: float  # cosine of each text's int8 vector to its fp32 vector
    cosine_min: float
    top1_same: float  # share of queries whose best caption is the same
    fp32_revision: str
    int8_revision: str

    @property
    def speedup(self) -> float:
        return self.fp32_s / self.int8_s

    @property
    def query_speedup(self) -> float:
        return self.fp32_query_ms / self.int8_query_ms


def query_overlap(
    corpus_a: Floats, queries_a: Floats, corpus_b: Floats, queries_b: Floats, k: int
) -> tuple[npt.NDArray[np.float64], float]:
    """Per query: share of A's top-k corpus items in B's top-k; and top-1 agreement."""
    top_a = np.argsort(-(queries_a @ corpus_a.T), axis=1, kind="stable")[:, :k]
    top_b = np.argsort(-(queries_b @ corpus_b.T), axis=1, kind="stable")[:, :k]
    shares = np.array(
        [len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(top_a, top_b, strict=True)]
    )
    return shares, float(np.mean(top_a[:, 0] == top_b[:, 0]))


def short_captions(count: int, seed: int) -> list[str]:
    """BLIP-like one-line captions only (what the ``blip`` backend stores)."""
    rng = np.random.default_rng([seed, 12])
    return [_scene(rng) for _ in range(count)]


def bench_text(corpus: list[str], short: list[str], queries: list[str], rounds: int) -> TextResult:
    fp32 = load_text_embedder(ModelSettings(device="cpu"))
    int8 = load_text_embedder(ModelSettings(device="cpu", text_quantize=True))
    fp32.load()
    int8.load()
    for model in (fp32, int8):
        model.embed(corpus[:BATCH_SIZE])  # warm-up
    times: dict[str, list[float]] = {"fp32": [], "int8": [], "fp32 short": [], "int8 short": []}
    vectors: dict[str, Floats] = {}
    for _ in range(rounds):
        for label, model in (("fp32", fp32), ("int8", int8)):
            started = time.perf_counter()
            vectors[label] = model.embed(corpus)
            times[label].append(time.perf_counter() - started)
            started = time.perf_counter()
            model.embed(short)
            times[f"{label} short"].append(time.perf_counter() - started)
    query_ms = {
        label: _one_by_one(model, queries) for label, model in (("fp32", fp32), ("int8", int8))
    }
    q32, q8 = fp32.embed(queries), int8.embed(queries)
    shares, top1 = query_overlap(vectors["fp32"], q32, vectors["int8"], q8, 10)
    cosines = np.sum(vectors["fp32"] * vectors["int8"], axis=1)
    return TextResult(
        corpus=len(corpus),
        corpus_chars=float(np.mean([len(t) for t in corpus])),
        queries=len(queries),
        fp32_s=min(times["fp32"]),
        int8_s=min(times["int8"]),
        short=len(short),
        short_chars=float(np.mean([len(t) for t in short])),
        short_fp32_s=min(times["fp32 short"]),
        short_int8_s=min(times["int8 short"]),
        fp32_query_ms=query_ms["fp32"],
        int8_query_ms=query_ms["int8"],
        query_overlap=float(shares.mean()),
        query_overlap_min=float(shares.min()),
        caption_overlap=top_k_overlap(vectors["fp32"], vectors["int8"], 10),
        cosine_mean=float(cosines.mean()),
        cosine_min=float(cosines.min()),
        top1_same=top1,
        fp32_revision=fp32.revision,
        int8_revision=int8.revision,
    )


def _one_by_one(model: TextEmbedder, queries: Sequence[str]) -> float:
    """p50 ms of embedding one query at a time, as the search API does."""
    ms = []
    for q in queries:
        started = time.perf_counter()
        model.embed([q])
        ms.append((time.perf_counter() - started) * 1000)
    return float(np.median(ms))


# --- report --------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    machine: dict[str, str],
    captioners: list[BatchResult],
    text: TextResult | None,
    total_s: float,
) -> str:
    out = report_header("Models benchmark", machine)
    out += [f"- **command**: `python -m bench.models` ({total_s / 60:.1f} min in all)", ""]
    if captioners:
        rows = [
            [
                r.name,
                f"{r.images / r.one_s:.1f}",
                f"{r.images / r.batch_s:.1f}",
                f"{r.speedup:.2f}x" + ("" if r.speedup >= GOAL_BATCH_SPEEDUP else " (**< 2x**)"),
                str(r.configured_batch),
                f"{r.same_captions:.0%}",
            ]
            for r in captioners
        ]
        out += [
            f"Captioners through `Captioner.predict`, {captioners[0].images} thumbnails "
            "from scikit-image's sample photos (512/320 px, preprocessing included), best "
            f"of {args.rounds} alternating rounds; goal ≥ {GOAL_BATCH_SPEEDUP:.0f}x at batch "
            f"{BATCH}:",
            "",
            table(
                [
                    "captioner",
                    "images/s, one by one",
                    f"images/s, batch {BATCH}",
                    "speed-up",
                    "batch_size it picks on CPU",
                    "same captions",
                ],
                rows,
            ),
            "",
        ]
    if text:
        t = text
        verdict = (
            "worth it"
            if t.speedup >= GOAL_INT8_SPEEDUP and t.query_overlap >= GOAL_OVERLAP
            else "**not worth it** (goal: ≥ 2x and overlap ≥ 0.95)"
        )
        rows = [
            [
                f"captions/s, batches of 64: the corpus ({t.corpus_chars:.0f} chars avg.)",
                f"{t.corpus / t.fp32_s:.0f}",
                f"{t.corpus / t.int8_s:.0f}",
                f"{t.speedup:.2f}x",
            ],
            [
                f"captions/s, batches of 64: {t.short:,} BLIP-like lines "
                f"({t.short_chars:.0f} chars avg.)",
                f"{t.short / t.short_fp32_s:.0f}",
                f"{t.short / t.short_int8_s:.0f}",
                f"{t.short_fp32_s / t.short_int8_s:.2f}x",
            ],
            [
                "one query (API path), p50 ms",
                f"{t.fp32_query_ms:.2f}",
                f"{t.int8_query_ms:.2f}",
                f"{t.query_speedup:.2f}x",
            ],
        ]
        out += [
            f"Text embedder (MiniLM-L6, revisions `{t.fp32_revision}` / `{t.int8_revision}`) "
            f"on {t.corpus:,} captions (3 in 4 label-style with two ImageNet descriptions, "
            f"1 in 4 BLIP-like sentences; {t.corpus_chars:.0f} characters on average) and "
            f"{t.queries} typed queries:",
            "",
            table(["", "fp32", "int8", "int8 speed-up"], rows),
            "",
            table(
                ["agreement of int8 with fp32", "value"],
                [
                    [
                        "query → caption top-10 overlap, mean (min)",
                        f"{t.query_overlap:.3f} ({t.query_overlap_min:.1f})",
                    ],
                    ["same best caption per query", f"{t.top1_same:.0%}"],
                    [
                        "caption → caption top-10 overlap (`ranking_agreement`)",
                        f"{t.caption_overlap:.3f}",
                    ],
                    [
                        "cosine(int8 vector, fp32 vector), mean (min)",
                        f"{t.cosine_mean:.4f} ({t.cosine_min:.4f})",
                    ],
                ],
            ),
            "",
            f"int8 verdict: {verdict}.",
            "",
        ]
    return "\n".join(out) + "\n"


# --- main ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.models", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--corpus", type=int, default=2000, help="captions to embed")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds; best is kept")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--skip-captioners", action="store_true")
    parser.add_argument("--skip-text", action="store_true")
    add_output_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    started = time.perf_counter()
    machine = machine_info({"transformers": transformers.__version__}, with_torch=True)
    with OtherLoad() as others:
        captioners, text = _run(args)
    machine["during the run"] = (
        f"other processes used {others.share:.0%} of the machine's CPU (sampled every 2 s)"
    )
    markdown = report(args, machine, captioners, text, time.perf_counter() - started)
    publish(markdown, args)


def _run(args: argparse.Namespace) -> tuple[list[BatchResult], TextResult | None]:
    captioners: list[BatchResult] = []
    if not args.skip_captioners:
        images = thumbnails(args.images, args.seed)
        runs: list[tuple[str, Callable[[], Captioner]]] = [
            ("labels (EfficientNet-Lite0)", lambda: load_captioner(ModelSettings(device="cpu")))
        ]
        fixtures = load_fixtures()
        tmp = tempfile.TemporaryDirectory(prefix="glimpse-bench-blip-")
        if fixtures is not None:
            blip_dir: Any = fixtures.build_tiny_blip(Path(tmp.name) / "tiny-blip")
            runs.append(
                (
                    "tiny random BLIP (tests/models_fixtures.py; 30 new tokens)",
                    lambda: load_captioner(
                        ModelSettings(captioner="blip", blip_model=str(blip_dir), device="cpu")
                    ),
                )
            )
        else:
            say("tests/models_fixtures.py not found: BLIP stand-in skipped")
        with tmp:
            for name, make in runs:
                say(f"captioner {name}: 1 vs {BATCH} …")
                result = bench_captioner(name, make(), images, args.rounds)
                say(
                    f"  {result.images / result.one_s:.1f} vs {result.images / result.batch_s:.1f}"
                    f" images/s ({result.speedup:.2f}x)"
                )
                captioners.append(result)
    text = None
    if not args.skip_text:
        say(f"text embedder fp32 vs int8 on {args.corpus} captions …")
        text = bench_text(
            caption_corpus(args.corpus, args.seed),
            short_captions(args.corpus, args.seed),
            typed_queries(args.queries, args.seed),
            args.rounds,
        )
        say(f"  {text.speedup:.2f}x faster, query overlap {text.query_overlap:.3f}")
    return captioners, text


if __name__ == "__main__":
    main()
