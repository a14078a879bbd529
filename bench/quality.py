"""Search quality on glimpse's own evaluation set (bench/quality_set.toml).

    python -m bench.quality [--no-spoken] [--no-record]

Every photo goes through what the services run: ingest's 512-px thumbnail, the labels
captioner (one forward pass, labels with their probabilities), a caption composed in
each caption *style* measured here, MiniLM text vectors, media/captions/embeddings rows
in a private embedded Postgres (one database per style), and the search the API runs
(``glimpse.relevance.search``: hybrid kNN + full text + RRF, then the relevance policy).
For each style x policy it prints R@1, R@5 and MRR of the typed queries, how many typed
queries got nothing, and how many hits queries for absent things got. Spoken phrases
are said by espeak-ng, transcribed by whisper as voice queries are, and searched with
the default style and policy. Appends a dated Markdown section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from PIL import Image

from bench.common import text_images
from bench.common.postgres import (
    BenchPostgres,
    connect,
    fresh_database,
    private_postgres,
    register_model,
)
from bench.common.quality_set import (
    THUMBNAIL_PX,
    Photo,
    QualitySet,
    Scores,
    load_set,
    nonsense_queries,
    score,
)
from bench.common.report import add_output_args, machine_info, publish, say
from glimpse.config import CueSettings, ModelSettings, SearchSettings, VoiceSettings
from glimpse.db import captions, media, vectors
from glimpse.db.captions import CaptionRow
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.db.statements import InTurn
from glimpse.media.thumbnail import make_thumbnail
from glimpse.models.bridge import ClassSpace, TextToVisual
from glimpse.models.bridge import build as build_bridge
from glimpse.models.captioning import load_captioner
from glimpse.models.cues import CueReader, ImageCues, searchable_text
from glimpse.models.device import limit_cpu_threads
from glimpse.models.imagenet import CaptionStyle, ImageNetVocabulary, compose_caption
from glimpse.models.text import TextEmbedder, load_text_embedder
from glimpse.relevance import RelevanceSettings
from glimpse.relevance import search as judged_search
from glimpse.search import KeywordBounds, SearchFilters, VectorQuery
from glimpse.vocabulary import library_words, without_repeats

# The labels the captioner would keep: top 3 classes, the best always, the others from
# 5 % (glimpse's defaults, unchanged by the styles below).
TOP_K = 3
MIN_PROBABILITY = 0.05


@dataclass(frozen=True, slots=True)
class Style:
    name: str
    style: CaptionStyle


STYLES = [
    Style("before: 3 labels + 2 whole descriptions", CaptionStyle(0.0, 2, None)),
    Style("label names only", CaptionStyle(described_labels=0)),
    Style("2 descriptions cut to <=200 chars (new default)", CaptionStyle(0.0, 2, 200)),
    Style("2 descriptions if p>=0.2, <=200 chars", CaptionStyle(0.2, 2, 200)),
    Style("2 descriptions, first sentence only", CaptionStyle(0.0, 2, 1)),
    Style("1 description if p>=0.5, <=200 chars", CaptionStyle(0.5, 1, 200)),
    Style("1 description if p>=0.3, <=200 chars", CaptionStyle(0.3, 1, 200)),
    Style("1 description if p>=0.5, whole", CaptionStyle(0.5, 1, None)),
]
POLICIES = {
    "fixed 0.25 (before)": RelevanceSettings(policy="fixed", min_similarity=0.25),
    "no cutoff": RelevanceSettings(policy="fixed", min_similarity=-1.0),
    "standout 3, weak 1.5 (<=4)": RelevanceSettings(weak_limit=4),
    "standout 3, weak 1.5 (<=2) (default)": RelevanceSettings(),
    "standout 3, weak 1 (<=4)": RelevanceSettings(weak=1.0, weak_limit=4),
    "standout 3, weak 2 (<=4)": RelevanceSettings(weak=2.0, weak_limit=4),
    "standout 2.5, weak 1.5 (<=4)": RelevanceSettings(strong=2.5, weak_limit=4),
}


# How the image list's standouts are judged (glimpse.relevance): the text side's
# thresholds, or stricter ones of its own.
BRIDGED = RelevanceSettings(image_decides=False)  # how the API judges the bridge
# Before 2026-12-01 a vector standing out ``strong`` was a match at any similarity.
UNFLOORED = replace(BRIDGED, min_similarity=-1.0)
NONSENSE_QUERIES = 200
BRIDGE_POLICIES = {
    "no cutoff": POLICIES["no cutoff"],
    "image decides as text: strong 3, weak 1.5 (<=4)": RelevanceSettings(weak_limit=4),
    "image only ranks and guesses, weak 1.5 (<=4)": RelevanceSettings(
        image_decides=False, weak_limit=4
    ),
    "image only ranks and guesses, weak 2 (<=4)": RelevanceSettings(
        image_decides=False, image_weak=2.0, weak_limit=4
    ),
    "image only ranks and guesses, weak 1.5 (<=1)": RelevanceSettings(
        image_decides=False, weak_limit=1
    ),
    "image only ranks and guesses, weak 1.5 (<=2), no similarity floor (before)": UNFLOORED,
    "image only ranks and guesses, weak 1.5 (<=2) (the API's)": BRIDGED,
}


@dataclass(frozen=True, slots=True)
class CueUse:
    """Which cues reach full text (the caption row) and the text vector."""

    name: str
    ocr_text: bool = False
    colours: bool = False
    embed_ocr_words: int = 0
    embed_colours: bool = False


CUE_USES = [
    CueUse("no cues (before)"),
    CueUse("OCR words in full text", ocr_text=True),
    CueUse("colours in full text", colours=True),
    CueUse("OCR + colours in full text", ocr_text=True, colours=True),
    CueUse("OCR + colours in full text, OCR in vector", True, True, embed_ocr_words=32),
    CueUse("OCR + colours in full text and vector (new default)", True, True, 32, True),
]
ROUNDS = 5
MODEL = vectors.VectorModel("minilm/all-MiniLM-L6-v2", "text", 384)
VISUAL_MODEL = vectors.VectorModel("labels/efficientnet-lite0", "visual", 1280)
BUCKET = "quality"


@dataclass(frozen=True, slots=True)
class TextPhoto:
    """A rendered image whose words are what a person remembers of it: the set has one
    page and no sign or screenshot, so these show whether such images are found by their
    words (measured with each cue setting, beside the set, never tuned on)."""

    id: str
    image: Image.Image
    queries: tuple[str, ...]

    def thumbnail(self) -> Image.Image:
        data = make_thumbnail(self.image, THUMBNAIL_PX)
        with Image.open(io.BytesIO(data)) as thumb:
            return thumb.convert("RGB")

    def original(self, side: int) -> Image.Image:
        copy = self.image.copy()
        copy.thumbnail((side, side), Image.Resampling.LANCZOS)
        return copy


def text_photos(quality: QualitySet) -> list[TextPhoto]:
    scene = next(p for p in quality.photos if p.id == "pagoda").original(1600)
    assert scene is not None
    return [
        TextPhoto("rendered page", text_images.page(),
                  ("harbour committee notes about the lighthouse", "report on the northern pier")),
        TextPhoto("rendered screenshot", text_images.screenshot(),
                  ("screenshot of the invoice email", "quarterly budget forecast")),
        TextPhoto("rendered sign", text_images.sign("FISH MARKET", scene),
                  ("fish market sign",)),
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Captioned:
    photo_id: str
    labels: list[tuple[str, float]]  # the captioner's kept labels, best first
    visual: np.ndarray  # the visual vector the caption stage stores


def caption_photos(
    quality: QualitySet, extra: Sequence[TextPhoto] = ()
) -> tuple[list[Captioned], float, ClassSpace]:
    """Labels and visual vectors of every photo (and ``extra``) through the real
    captioner; mean ms per photo; its classes (for the text-to-visual bridge)."""
    captioner = load_captioner(
        ModelSettings(labels_top_k=TOP_K, labels_min_probability=MIN_PROBABILITY)
    )
    captioner.load()
    ids = [photo.id for photo in quality.photos] + [photo.id for photo in extra]
    thumbnails = [photo.thumbnail() for photo in quality.photos]
    thumbnails += [photo.thumbnail() for photo in extra]
    captioner.predict(thumbnails[:1])  # warm-up
    started = time.perf_counter()
    analyses = captioner.predict(thumbnails)
    ms = (time.perf_counter() - started) * 1000 / len(thumbnails)
    space = captioner.class_space()
    assert space is not None  # the labels captioner
    captioned = [
        Captioned(photo_id, analysis.labels, analysis.visual)
        for photo_id, analysis in zip(ids, analyses, strict=True)
        if analysis.visual is not None
    ]
    return captioned, ms, space


def compose(captioned: Captioned, vocabulary: ImageNetVocabulary, style: CaptionStyle) -> str:
    descriptions = [vocabulary.descriptions[vocabulary.names.index(n)] for n, _ in captioned.labels]
    return compose_caption(captioned.labels, descriptions, style)


def embed_ms(embedder: TextEmbedder, captions_by_style: dict[str, list[str]]) -> dict[str, float]:
    """CPU ms (this process, one torch thread) to embed one caption of each style, one at
    a time as a lightly loaded embed worker does: per caption the least of ROUNDS rounds
    (what it costs when nothing else gets in the way), averaged over the captions. CPU
    time, not wall time, and the least of several: the machine is shared, and waiting
    for a core or a cache is not the model's cost. The styles take turns each round."""
    times: dict[str, list[list[float]]] = {
        name: [[] for _ in texts] for name, texts in captions_by_style.items()
    }
    for _ in range(ROUNDS):
        for name, texts in captions_by_style.items():
            for index, text in enumerate(texts):
                started = time.process_time()
                embedder.embed([text])
                times[name][index].append((time.process_time() - started) * 1000)
    return {name: statistics.mean(min(t) for t in per) for name, per in times.items()}


def read_cues(photos: Sequence[Photo | TextPhoto]) -> tuple[dict[str, ImageCues], list[float]]:
    """Cues of every photo as the caption service reads them (thumbnail, original for
    small text); CPU ms per photo (gate + colours + OCR where the gate lets it)."""
    reader = CueReader(CueSettings())
    reader.load()
    cues: dict[str, ImageCues] = {}
    cpu_ms = []
    for photo in photos:
        thumbnail = photo.thumbnail()
        started = time.process_time()
        cues[photo.id] = reader.read(thumbnail, photo.original)
        cpu_ms.append((time.process_time() - started) * 1000)
    return cues, cpu_ms


def load_library(
    conn: psycopg.Connection[Any],
    captions_: dict[str, str],
    vecs: np.ndarray,
    cues: dict[str, ImageCues] | None = None,
    use: CueUse = CUE_USES[0],
    visual: dict[str, np.ndarray] | None = None,
) -> dict[Any, str]:
    """Rows as the services write them (with ``visual``: the visual vectors too);
    returns media id -> photo id."""
    register_model(conn, MODEL)
    if visual is not None:
        register_model(conn, VISUAL_MODEL)
    ids = {}
    for (photo_id, text), vec in zip(captions_.items(), vecs, strict=True):
        row = MediaRow(
            bucket=BUCKET,
            key=f"photos/{photo_id}.jpg",
            status=MediaStatus.ACCEPTED,
            kind="image",
            mime="image/jpeg",
            sha256=photo_id,
        )
        media.save(conn, row)
        cue = (cues or {}).get(photo_id, ImageCues())
        caption = CaptionRow(
            row.id,
            "labels/efficientnet-lite0",
            "q",
            text,
            [],
            cue.ocr_text if use.ocr_text else "",
            cue.colours if use.colours else [],
        )
        captions.save(conn, [caption])
        vectors.save(conn, [row.id], MODEL, ["caption"], vec[None, :])
        if visual is not None:
            vectors.save(conn, [row.id], VISUAL_MODEL, ["image"], visual[photo_id][None, :])
        ids[row.id] = photo_id
    conn.commit()
    return ids


def shown_for(
    conn: psycopg.Connection[Any],
    text: str,
    vec: np.ndarray,
    policy: RelevanceSettings,
    ids: dict[Any, str],
    bridge: TextToVisual | None = None,
) -> list[tuple[str, bool]]:
    """(photo id, weak) of what the API would show for ``text``, in order (with
    ``bridge``: the images also ranked through the text-to-visual bridge, as the API
    does without a joint model)."""
    search = SearchSettings()
    joint = VectorQuery(VISUAL_MODEL, bridge.to_visual(vec)) if bridge else None
    judged = judged_search(
        InTurn(conn),
        text,
        vec,
        MODEL,
        SearchFilters(),
        policy,
        search.candidates,
        ef_search=search.ef_search,
        keyword_bounds=KeywordBounds.of(search),
        joint=joint,
    )
    conn.rollback()  # SET LOCAL settings end with the transaction, as in the API
    return [(ids[j.candidate.media_id], j.weak) for j in judged]


def evaluate(
    conn: psycopg.Connection[Any],
    quality: QualitySet,
    query_vecs: dict[str, np.ndarray],
    policy: RelevanceSettings,
    ids: dict[Any, str],
    bridge: TextToVisual | None = None,
) -> tuple[Scores, list[str]]:
    typed = []
    misses = []
    for query, target in quality.typed():
        shown = [pid for pid, _ in shown_for(conn, query, query_vecs[query], policy, ids, bridge)]
        typed.append((target, shown))
        if shown[:1] != [target]:
            misses.append(f"{query!r} -> {target}: got {shown[:3]}")
    absent = []
    for query in quality.absent:
        shown_absent = shown_for(conn, query, query_vecs[query], policy, ids, bridge)
        absent.append((len(shown_absent), sum(1 for _, weak in shown_absent if not weak)))
    return score(typed, absent), misses


def spoken_transcripts(
    quality: QualitySet, workdir: Path, hotwords: str | None = None
) -> dict[str, str]:
    """Each spoken phrase said by espeak-ng and heard by whisper as voice queries are
    (with ``hotwords``: biased toward the library's words, as the service does)."""
    from glimpse.config import Settings
    from glimpse.models.speech import load_transcriber

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        say("espeak-ng is not installed: no spoken queries")
        return {}
    settings = Settings()
    transcriber = load_transcriber(settings.models, workdir)
    transcriber.load()
    heard = {}
    for spoken in quality.spoken:
        wav = workdir / "clip.wav"
        subprocess.run(
            [espeak, "-v", "en-us", "-s", "150", "-w", str(wav), spoken.text], check=True
        )
        transcript = transcriber.transcribe(
            wav.read_bytes(),
            max_seconds=settings.voice.max_seconds,
            language=settings.voice.language,
            hotwords=hotwords,
        )
        heard[spoken.text] = without_repeats(transcript.text)
    return heard


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-spoken", action="store_true", help="skip espeak-ng + whisper")
    parser.add_argument("--misses", action="store_true", help="print every query not first")
    parser.add_argument(
        "--bridge-only",
        action="store_true",
        help="only the text-to-visual bridge's table (skips the caption styles and cues)",
    )
    add_output_args(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    machine = machine_info()
    quality = load_set()
    say(f"{len(quality.photos)} photos, {len(quality.typed())} typed, {len(quality.absent)} absent")
    extra = text_photos(quality)
    captioned, caption_ms, space = caption_photos(quality, extra)
    captioned, extra_captioned = (captioned[: len(quality.photos)],
                                  captioned[len(quality.photos) :])  # fmt: skip
    say("reading words and colours …")
    cues, cue_ms = read_cues(quality.photos)
    extra_cues, extra_ms = read_cues(extra)
    vocabulary = ImageNetVocabulary.load()
    # One thread, as glimpse up gives each model process on 2 cores: stabler timings.
    limit_cpu_threads(1)
    embedder = load_text_embedder(ModelSettings())
    embedder.load()
    queries = [q for q, _ in quality.typed()] + list(quality.absent)
    workdir = Path(tempfile.mkdtemp(prefix="glimpse-quality-"))
    heard = {} if args.no_spoken else spoken_transcripts(quality, workdir)
    query_vecs = dict(zip(queries, embedder.embed(queries), strict=True))
    heard_vecs = dict(zip(heard.values(), embedder.embed(list(heard.values())), strict=True))

    lines = [
        f"## Search quality ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        "`python -m bench.quality`)",
        "",
        *(f"- {key}: {value}" for key, value in machine.items()),
        f"- set: {len(quality.photos)} photos from scikit-image and scikit-learn, "
        f"{len(quality.typed())} typed queries, {len(quality.absent)} absent things, "
        f"{len(heard)} spoken (bench/quality_set.toml); labels: top {TOP_K}, "
        f"p >= {MIN_PROBABILITY}; caption {caption_ms:.0f} ms/photo",
        "",
        "| caption style | chars/caption | embed CPU ms/caption | policy | R@1 | R@5 | MRR "
        "| typed with nothing | hits for absent things | of them not weak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    captions_by_style = {
        style.name: {c.photo_id: compose(c, vocabulary, style.style) for c in captioned}
        for style in STYLES
    }
    say("timing the embedder on each style's captions …")
    ms_by_style = embed_ms(
        embedder,
        {n: list(t.values()) for n, t in captions_by_style.items() if not args.bridge_only},
    )
    spoken_lines: list[str] = []
    with private_postgres(workdir) as port:
        bridge_lines = bridge_results(
            port,
            quality,
            (captions_by_style[_default_name()], cues, {c.photo_id: c.visual for c in captioned}),
            embedder,
            (query_vecs, heard, heard_vecs),
            space,
            args,
        )
        for index, style in enumerate(STYLES if not args.bridge_only else []):
            texts = captions_by_style[style.name]
            vecs = embedder.embed(list(texts.values()))
            embed_ms_ = ms_by_style[style.name]
            chars = statistics.mean(len(t) for t in texts.values())
            url = fresh_database(port, f"quality_{index}")
            with connect(url) as conn:
                ids = load_library(conn, texts, vecs)
                for policy_name, policy in POLICIES.items():
                    scores, misses = evaluate(conn, quality, query_vecs, policy, ids)
                    say(f"{style.name} | {policy_name}: {scores.row()}")
                    if args.misses:
                        for miss in misses:
                            print("   ", miss)
                    lines.append(
                        f"| {style.name} | {chars:.0f} | {embed_ms_:.1f} | {policy_name} | "
                        + " | ".join(scores.row())
                        + " |"
                    )
                if heard and style.style == CaptionStyle():
                    spoken_lines = spoken_results(conn, quality, (heard, heard_vecs), ids)
                    spoken_lines += biased_spoken(conn, quality, workdir, embedder, ids)
        extra_texts = {c.photo_id: compose(c, vocabulary, CaptionStyle()) for c in extra_captioned}
        if args.bridge_only:
            publish("\n".join([*lines[: 2 + len(machine)], "", *bridge_lines]) + "\n", args)
            return
        cue_lines = cue_results(
            port,
            quality,
            (captions_by_style[_default_name()], cues),
            (extra, extra_texts, extra_cues),
            embedder,
            query_vecs,
            args,
        )
    shutil.rmtree(workdir, ignore_errors=True)
    ran = [c for c in cues.values() if c.ocr_ran]
    lines += [
        "",
        *spoken_lines,
        "",
        "Cues (default caption style, default policy): words read in the image (OCR) and "
        f"colour names. Cost per photo (CPU ms: text gate + colours + OCR where the gate "
        f"let it run): mean {statistics.mean(cue_ms):.0f}, median "
        f"{statistics.median(cue_ms):.0f}, max {max(cue_ms):.0f}; OCR ran on {len(ran)} of "
        f"{len(cues)} photos, words kept for "
        f"{sum(1 for c in cues.values() if c.ocr_text)}. The rendered text images: "
        + ", ".join(f"{pid} {ms:.0f} ms" for pid, ms in zip(extra_cues, extra_ms, strict=True))
        + ".",
        "",
        *cue_lines,
        "",
        *bridge_lines,
        "",
        "Cues read per photo:",
        "",
        *(
            f"- {pid}: colours {', '.join(n for n, _ in c.colours) or '-'}; "
            f"text {c.ocr_text[:100]!r}" + (f" (OCR {ms:.0f} ms)" if c.ocr_ran else "")
            for (pid, c), ms in zip(
                [*cues.items(), *extra_cues.items()], cue_ms + extra_ms, strict=True
            )
        ),
        "",
        "Captions of the default style:",
        "",
    ]
    lines += [f"- {pid}: {text}" for pid, text in captions_by_style[_default_name()].items()]
    publish("\n".join(lines) + "\n", args)


def cue_results(
    port: BenchPostgres,
    quality: QualitySet,
    library: tuple[dict[str, str], dict[str, ImageCues]],
    extra: tuple[list[TextPhoto], dict[str, str], dict[str, ImageCues]],
    embedder: TextEmbedder,
    query_vecs: dict[str, np.ndarray],
    args: argparse.Namespace,
) -> list[str]:
    """Each way of using the cues, on the default caption style and policy: the set, and
    the rendered text images' queries searched in the set plus those images."""
    texts, cues = library
    photos, extra_texts, extra_cues = extra
    extra_queries = [(q, photo.id) for photo in photos for q in photo.queries]
    extra_vecs = dict(
        zip([q for q, _ in extra_queries], embedder.embed([q for q, _ in extra_queries]),
            strict=True)
    )  # fmt: skip
    lines = [
        "| cues | R@1 | R@5 | MRR | typed with nothing | hits for absent things "
        f"| of them not weak | text images: first / top 5 of {len(extra_queries)} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    policy = RelevanceSettings()
    for index, use in enumerate(CUE_USES):
        settings = CueSettings(embed_ocr_words=use.embed_ocr_words, embed_colours=use.embed_colours)
        with connect(fresh_database(port, f"quality_cues_{index}")) as conn:
            ids = load_library(conn, texts, _vectors(embedder, texts, cues, settings), cues, use)
            scores, misses = evaluate(conn, quality, query_vecs, policy, ids)
        all_texts = {**texts, **extra_texts}
        all_cues = {**cues, **extra_cues}
        with connect(fresh_database(port, f"quality_text_{index}")) as conn:
            vecs = _vectors(embedder, all_texts, all_cues, settings)
            ids = load_library(conn, all_texts, vecs, all_cues, use)
            ranks = []
            for query, target in extra_queries:
                shown = [pid for pid, _ in shown_for(conn, query, extra_vecs[query], policy, ids)]
                ranks.append(shown.index(target) + 1 if target in shown else None)
        first = sum(1 for r in ranks if r == 1)
        top5 = sum(1 for r in ranks if r is not None and r <= 5)
        say(f"{use.name}: {scores.row()}; text images {first}/{top5} of {len(ranks)}")
        if args.misses:
            for miss in misses:
                print("   ", miss)
        lines.append(f"| {use.name} | " + " | ".join(scores.row()) + f" | {first} / {top5} |")
    return lines


def bridge_results(
    port: BenchPostgres,
    quality: QualitySet,
    library: tuple[dict[str, str], dict[str, ImageCues], dict[str, np.ndarray]],
    embedder: TextEmbedder,
    queries: tuple[dict[str, np.ndarray], dict[str, str], dict[str, np.ndarray]],
    space: ClassSpace,
    args: argparse.Namespace,
) -> list[str]:
    """The bridge fitted on ``space``; the default library (style, cues) with its visual
    vectors, searched without and with the bridge's image list, under the default
    policy and without a cutoff."""
    started = time.perf_counter()
    bridge = build_bridge(space, embedder.embed, MODEL.model, VISUAL_MODEL.model)
    fit_s = time.perf_counter() - started
    texts, cues, visual = library
    query_vecs, heard, heard_vecs = queries
    use = CUE_USES[-1]
    settings = CueSettings(embed_ocr_words=use.embed_ocr_words, embed_colours=use.embed_colours)
    lines = [
        f"Text-to-visual bridge (default caption style and cues; ridge fitted on "
        f"{len(space.texts)} class texts in {fit_s:.1f} s):",
        "",
        "| image list | policy | R@1 | R@5 | MRR | typed with nothing "
        "| hits for absent things | of them not weak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    spoken: list[str] = []
    with connect(fresh_database(port, "quality_bridge")) as conn:
        vecs = _vectors(embedder, texts, cues, settings)
        ids = load_library(conn, texts, vecs, cues, use, visual)
        for policy_name, policy, used in (
            ("standout 3, weak 1.5 (<=4) (before)", POLICIES["standout 3, weak 1.5 (<=4)"], None),
            (
                "standout 3, weak 1.5 (<=2) (default)",
                POLICIES["standout 3, weak 1.5 (<=2) (default)"],
                None,
            ),
            ("no cutoff", POLICIES["no cutoff"], None),
            *((name, p, bridge) for name, p in BRIDGE_POLICIES.items()),
        ):
            name = "text-to-visual bridge" if used else "none (before)"
            scores, misses = evaluate(conn, quality, query_vecs, policy, ids, used)
            say(f"bridge {name} | {policy_name}: {scores.row()}")
            if args.misses:
                for miss in misses:
                    print("   ", miss)
            lines.append(f"| {name} | {policy_name} | " + " | ".join(scores.row()) + " |")
        lines += ["", *nonsense_results(conn, embedder, ids, bridge)]
        if heard:
            for name, used, policy in (
                ("no image list", None, RelevanceSettings()),
                ("with the bridge", bridge, BRIDGED),
            ):
                spoken += [
                    "",
                    *spoken_results(conn, quality, (heard, heard_vecs), ids, (used, policy), name),
                ]
    return lines + spoken


def nonsense_results(
    conn: psycopg.Connection[Any],
    embedder: TextEmbedder,
    ids: dict[Any, str],
    bridge: TextToVisual,
) -> list[str]:
    """Random letter strings searched as the API does (with the bridge): how many get a
    match (a hit not marked weak), and how many hits each gets, with and without the
    similarity floor for a vector alone."""
    queries = nonsense_queries(NONSENSE_QUERIES)
    vecs = dict(zip(queries, embedder.embed(queries), strict=True))
    lines = [
        f"Nonsense queries ({len(queries)} strings of 1-3 made-up words, "
        "`quality_set.nonsense_queries`), with the bridge:",
        "",
        "| policy | queries given a match | hits shown per query |",
        "|---|---|---|",
    ]
    for name, policy in (("no similarity floor (before)", UNFLOORED), ("the API's", BRIDGED)):
        shown = [shown_for(conn, q, vecs[q], policy, ids, bridge) for q in queries]
        matched = sum(1 for hits in shown if any(not weak for _, weak in hits))
        per_query = statistics.mean(len(hits) for hits in shown)
        say(f"nonsense | {name}: {matched}/{len(queries)} given a match")
        lines.append(f"| {name} | {matched}/{len(queries)} | {per_query:.2f} |")
    return lines


def _vectors(
    embedder: TextEmbedder,
    texts: dict[str, str],
    cues: dict[str, ImageCues],
    settings: CueSettings,
) -> np.ndarray:
    return embedder.embed(
        [
            searchable_text(text, cues[pid].ocr_text, cues[pid].colours, settings)
            for pid, text in texts.items()
        ]
    )


def spoken_results(
    conn: psycopg.Connection[Any],
    quality: QualitySet,
    spoken_queries: tuple[dict[str, str], dict[str, np.ndarray]],
    ids: dict[Any, str],
    image_list: tuple[TextToVisual | None, RelevanceSettings] = (None, RelevanceSettings()),
    what: str = "default style and policy",
) -> list[str]:
    heard, heard_vecs = spoken_queries
    bridge, policy = image_list
    found = 0
    rows = ["| said | heard | right photo's rank |", "|---|---|---|"]
    for spoken in quality.spoken:
        text = heard[spoken.text]
        shown = [pid for pid, _ in shown_for(conn, text, heard_vecs[text], policy, ids, bridge)]
        rank = shown.index(spoken.target) + 1 if spoken.target in shown else None
        found += rank is not None and rank <= 5
        rows.append(f"| {spoken.text} | {text} | {rank or '-'} |")
    return [
        f"Spoken ({what}): right photo in the top 5 for {found}/{len(quality.spoken)}",
        "",
        *rows,
    ]


def biased_spoken(
    conn: psycopg.Connection[Any],
    quality: QualitySet,
    workdir: Path,
    embedder: TextEmbedder,
    ids: dict[Any, str],
) -> list[str]:
    """The spoken queries heard again with the library's words as whisper's hotwords,
    as the voice-query worker hears them."""
    words = library_words(conn, VoiceSettings().vocabulary_words)
    say(f"spoken queries again, biased toward {len(words)} library words …")
    biased = spoken_transcripts(quality, workdir, " ".join(words) or None)
    vecs = dict(zip(biased.values(), embedder.embed(list(biased.values())), strict=True))
    return [
        "",
        f"With the library's {len(words)} most common words as whisper's hotwords "
        f"({', '.join(words[:12])}, …):",
        "",
        *spoken_results(conn, quality, (biased, vecs), ids),
    ]


def _default_name() -> str:
    return next(s.name for s in STYLES if s.style == CaptionStyle())


if __name__ == "__main__":
    main()
