"""Pipeline benchmark: upload → searchable latency and throughput vs. the bare models.

    python -m bench.pipeline [--count 500] [--pace-fraction 0.5] [--no-record]

One run, in this order:

1. waits for a quiet machine (1-minute load average below ``--max-load``), then
   generates two deterministic, duplicate-free photo corpora with bench.common.corpus'
   generator (not timed): one for the burst run, a second for the paced run (the
   same bytes twice would be recorded as duplicates and never captioned);
2. bare models in this process, on the burst corpus' own 512-px thumbnails (made by
   ``validate_media`` as ingest makes them): decode → ``captioner.predict`` (labels
   backend, ``load_captioner(ModelSettings())``) → ``embedder.embed`` of its caption,
   one image at a time: the bare caption+embed throughput; also each model alone;
3. starts the embedded stack on a fresh home, lets a few warm-up images through, then
   uploads the paced corpus at a fraction of the bare rate (latency = the pipeline,
   not a backlog), then the burst corpus all at once (throughput), from 8 threads;
   for every image, upload→searchable latency = its PUT returning → its text
   embedding visible in Postgres (polled every 50 ms, one query over all pending
   ids), with a per-stage breakdown from the rows' own timestamps and the CPU time
   of every part over each run's window.

Prints Markdown tables and appends them, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psutil
import psycopg
from PIL import Image

from bench.common.corpus import Photo, corpus_bytes, corpus_mix, make_corpus
from bench.common.processes import CpuSnapshot, machine_busy_fraction
from bench.common.quiet import wait_for_idle_cpus, wait_for_low_load
from bench.common.report import (
    add_output_args,
    machine_info,
    of_one_core,
    percentile,
    publish,
    say,
    table,
)
from bench.common.stack import (
    BATCHES,
    IN_BATCHES,
    INFLIGHT,
    MESSAGES,
    StartStop,
    part_pids,
    private_settings,
    running_stack,
    s3_client,
    worker_metrics,
)
from glimpse.config import LimitsSettings, ModelSettings, Settings
from glimpse.db.media import media_id
from glimpse.media import validate_media
from glimpse.models.captioning import load_captioner
from glimpse.models.text import BATCH_SIZE, load_text_embedder
from glimpse.stack.ports import worker_health_ports
from glimpse.stack.supervisor import EmbeddedStack

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

MB = 1_000_000
GOAL_P50_S = 2.0
GOAL_RATIO = 0.8
POLL_S = 0.05
WORKERS = ("ingest", "caption", "embed")


# --- 2. bare models ------------------------------------------------------------------


def decode_thumbnail(data: bytes) -> Image.Image:
    """As the caption worker decodes what it reads (services/caption/handler.py)."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (512, 512))
        return image.convert("RGB")


@dataclass(frozen=True, slots=True)
class Timed:
    """``count`` items in ``wall_s``; ``cpu_s`` is this process' CPU over it, every
    thread (torch's OpenMP threads too, spinning included)."""

    wall_s: float
    cpu_s: float
    count: int

    @property
    def per_s(self) -> float:
        return self.count / self.wall_s

    @property
    def wall_ms(self) -> float:
        return 1000 * self.wall_s / self.count

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.count


class Stopwatch:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def timed(self, count: int) -> Timed:
        return Timed(time.perf_counter() - self.wall, time.process_time() - self.cpu, count)


@dataclass
class BareModels:
    torch_threads: int
    load_s: float  # both models' load(), not part of any rate
    validate: Timed  # validate_media over the originals (ingest's share), one thread
    rounds: list[Timed]  # decode + predict + embed, one image at a time, in rounds
    split_ms: tuple[float, float, float]  # … decode, predict, embed per image, all rounds
    one_thread: Timed  # the same chain with torch.set_num_threads(1)
    captioner: Timed  # predict alone on decoded thumbnails
    embedder_one: Timed  # embed alone, one caption per call
    embedder_batched: Timed  # embed alone, all captions in one call (batches of 64)
    distinct_captions: int
    others_busy: float  # other processes during this phase, in cores

    @property
    def images(self) -> int:
        return sum(r.count for r in self.rounds)

    @property
    def chain(self) -> Timed:
        wall = sum(r.wall_s for r in self.rounds)
        return Timed(wall, sum(r.cpu_s for r in self.rounds), self.images)

    @property
    def chain_per_s(self) -> float:
        """The bare caption+embed throughput: the median round's, so that another
        process stealing the cores for a few seconds does not decide it."""
        return float(np.median([r.per_s for r in self.rounds]))


def make_thumbnails(corpus: Sequence[Photo]) -> tuple[list[bytes], Timed]:
    """The 512-px thumbnails ingest would store, and the time ``validate_media`` took."""
    limits = LimitsSettings()
    thumbnails: list[bytes] = []
    watch = Stopwatch()
    for photo in corpus:
        thumbnail = validate_media(photo.data, limits).thumbnail
        assert thumbnail is not None
        thumbnails.append(thumbnail)
    return thumbnails, watch.timed(len(corpus))


def bench_bare_models(thumbnails: Sequence[bytes], validate: Timed, rounds: int) -> BareModels:
    import torch

    models = ModelSettings()
    captioner, embedder = load_captioner(models), load_text_embedder(models)
    started = time.perf_counter()
    captioner.load()
    embedder.load()
    load_s = time.perf_counter() - started
    for data in thumbnails[:5]:  # first calls allocate, pick kernels
        embedder.embed([captioner.predict([decode_thumbnail(data)])[0].caption])
    machine_before, me_before = psutil.cpu_times(), time.process_time()
    wall_before = time.perf_counter()

    # The sequence one image takes through the caption and embed workers, minus the
    # queues: decode the thumbnail, caption it, embed the caption.
    split = [0.0, 0.0, 0.0]
    captions: list[str] = []

    def chain(batch: Sequence[bytes]) -> Timed:
        watch = Stopwatch()
        for data in batch:
            t0 = time.perf_counter()
            image = decode_thumbnail(data)
            t1 = time.perf_counter()
            [analysis] = captioner.predict([image])
            t2 = time.perf_counter()
            embedder.embed([analysis.caption])
            t3 = time.perf_counter()
            for i, seconds in enumerate((t1 - t0, t2 - t1, t3 - t2)):
                split[i] += seconds
            captions.append(analysis.caption)
        return watch.timed(len(batch))

    size = -(-len(thumbnails) // rounds)
    timed_rounds = [chain(thumbnails[i : i + size]) for i in range(0, len(thumbnails), size)]
    split_ms = (
        1000 * split[0] / len(thumbnails),
        1000 * split[1] / len(thumbnails),
        1000 * split[2] / len(thumbnails),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one_thread = chain(thumbnails[:size])
    finally:
        torch.set_num_threads(threads)
    captions = captions[: len(thumbnails)]

    images = [decode_thumbnail(data) for data in thumbnails]
    watch = Stopwatch()
    for image in images:
        captioner.predict([image])
    captioner_timed = watch.timed(len(images))
    del images

    watch = Stopwatch()
    for caption in captions:
        embedder.embed([caption])
    embedder_one = watch.timed(len(captions))
    watch = Stopwatch()
    embedder.embed(captions)
    embedder_batched = watch.timed(len(captions))

    wall = time.perf_counter() - wall_before
    busy = machine_busy_fraction(machine_before, psutil.cpu_times())
    mine = time.process_time() - me_before
    return BareModels(
        torch_threads=threads,
        load_s=load_s,
        validate=validate,
        rounds=timed_rounds,
        split_ms=split_ms,
        one_thread=one_thread,
        captioner=captioner_timed,
        embedder_one=embedder_one,
        embedder_batched=embedder_batched,
        distinct_captions=len(set(captions)),
        others_busy=max(0.0, busy * (psutil.cpu_count() or 1) * wall - mine) / wall,
    )


# --- 3. the pipeline -----------------------------------------------------------------


class PacedUploader(threading.Thread):
    """PUTs photos from ``threads`` threads, photo i not before start + i/rate (all at
    once without a rate), noting when each PUT started and returned (wall clock, to
    compare with Postgres' timestamps)."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        photos: Sequence[Photo],
        threads: int,
        rate: float | None,
    ):
        super().__init__(name="uploader", daemon=True)
        self.client, self.bucket, self.photos = client, bucket, photos
        self.threads, self.rate = threads, rate
        self.put_start: dict[str, float] = {}
        self.put_done: dict[str, float] = {}
        self.error: BaseException | None = None
        self._t0 = 0.0

    def run(self) -> None:
        self._t0 = time.time()
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="put") as pool:
                list(pool.map(self._put, range(len(self.photos))))
        except BaseException as exc:
            self.error = exc

    def _put(self, index: int) -> None:
        photo = self.photos[index]
        if self.rate:
            delay = self._t0 + index / self.rate - time.time()
            if delay > 0:
                time.sleep(delay)
        started = time.time()
        self.client.put_object(
            Bucket=self.bucket, Key=photo.key, Body=photo.data, ContentType=photo.mime
        )
        self.put_start[photo.key], self.put_done[photo.key] = started, time.time()


@dataclass
class Stages:
    """Per image, epoch seconds: the rows' own ``created_at`` (the start of the
    transaction that wrote them) and when the poller saw the text embedding."""

    put_done: float
    media_at: float | None
    caption_at: float | None
    embedding_at: float | None
    searchable_at: float


@dataclass
class PipelineRun:
    name: str
    photos: Sequence[Photo]
    rate: float | None
    window_s: float  # first PUT started → last image searchable
    upload_s: float  # first PUT started → last PUT returned
    latencies: list[float]  # PUT returned → searchable, per image
    stages: list[Stages]
    failed: dict[str, str]
    cpu_s: dict[str, float]
    wait_s: dict[str, float]
    busy: float
    metrics: dict[str, dict[str, float]]
    quiet: str

    @property
    def per_s(self) -> float:
        return len(self.latencies) / self.window_s

    @property
    def put_rate(self) -> float:
        return len(self.photos) / self.upload_s


_SEARCHABLE = "SELECT media_id FROM embeddings WHERE kind = 'text' AND media_id = ANY(%s)"
_FAILED = """
SELECT id, status || coalesce(': ' || reason, '') FROM media
WHERE id = ANY(%(ids)s) AND status <> 'accepted'
UNION ALL
SELECT media_id, stage || ': ' || message FROM media_failures WHERE media_id = ANY(%(ids)s)
"""
_STAGES = """
SELECT m.id, extract(epoch FROM m.created_at), extract(epoch FROM c.created_at),
       extract(epoch FROM e.created_at)
FROM media m
LEFT JOIN captions c ON c.media_id = m.id
LEFT JOIN embeddings e ON e.media_id = m.id AND e.kind = 'text'
WHERE m.id = ANY(%s)
"""


def run_pipeline(
    name: str,
    stack: EmbeddedStack,
    s: Settings,
    client: S3Client,
    photos: Sequence[Photo],
    threads: int,
    rate: float | None,
    timeout_s: float,
    quiet: str = "",
) -> PipelineRun:
    """Upload ``photos`` and wait until every one is searchable (or failed)."""
    assert s.database.url
    bucket = s.s3.bucket
    ids = {media_id(bucket, photo.key): photo.key for photo in photos}
    ports = worker_ports(s)
    pids = part_pids(stack)
    searchable: dict[uuid.UUID, float] = {}
    failed: dict[str, str] = {}
    with psycopg.connect(s.database.url, autocommit=True) as conn:
        metrics_before = {n: worker_metrics(p) for n, p in ports.items()}
        before = CpuSnapshot.take(pids)
        uploader = PacedUploader(client, bucket, photos, threads, rate)
        uploader.start()
        deadline, next_check = time.monotonic() + timeout_s, time.monotonic() + 1.0
        pending = list(ids)
        while pending:
            rows = conn.execute(_SEARCHABLE, (pending,)).fetchall()
            seen = time.time()
            for (mid,) in rows:
                searchable[mid] = seen
            if time.monotonic() >= next_check:  # rejected or dead-lettered: never searchable
                next_check = time.monotonic() + 1.0
                for mid, why in conn.execute(_FAILED, {"ids": pending}).fetchall():
                    failed[ids[mid]] = why
            pending = [m for m in pending if m not in searchable and ids[m] not in failed]
            if uploader.error is not None:
                raise RuntimeError(f"upload failed: {uploader.error!r}") from uploader.error
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{name}: {len(searchable)} of {len(ids)} searchable after {timeout_s:.0f} s"
                )
            if pending:
                time.sleep(POLL_S)
        after = CpuSnapshot.take(pids)
        uploader.join()
        stamps: dict[uuid.UUID, list[float | None]] = {
            row[0]: [None if v is None else float(v) for v in row[1:]]
            for row in conn.execute(_STAGES, (list(searchable),)).fetchall()
        }
    metrics_after = settled_metrics(ports)
    first_put = min(uploader.put_start.values())
    stages = []
    for mid, seen_at in searchable.items():
        media_at, caption_at, embedding_at = stamps.get(mid, [None, None, None])
        stages.append(
            Stages(uploader.put_done[ids[mid]], media_at, caption_at, embedding_at, seen_at)
        )
    return PipelineRun(
        name=name,
        photos=photos,
        rate=rate,
        window_s=max(searchable.values(), default=first_put) - first_put,
        upload_s=max(uploader.put_done.values()) - first_put,
        latencies=sorted(st.searchable_at - st.put_done for st in stages),
        stages=stages,
        failed=failed,
        cpu_s={k: after.cpu_s[k] - before.cpu_s[k] for k in after.cpu_s},
        wait_s={k: after.wait_s[k] - before.wait_s.get(k, 0.0) for k in after.wait_s},
        busy=machine_busy_fraction(before.system, after.system),
        metrics={
            n: {k: v - metrics_before[n].get(k, 0.0) for k, v in m.items()}
            for n, m in metrics_after.items()
        },
        quiet=quiet,
    )


def worker_ports(s: Settings) -> dict[str, int]:
    """The image pipeline's workers (the photos measured here never reach transcribe)."""
    ports = worker_health_ports(s.stack)
    return {name: ports[name] for name in ("ingest", "caption", "embed")}


def settled_metrics(ports: dict[str, int], timeout_s: float = 20) -> dict[str, dict[str, float]]:
    """The workers' metrics once all are idle: a batch is counted after its offsets are
    committed, a moment after its rows appeared, and each upload also brings its
    thumbnail's event to ingest (skipped). Wait until nothing moved for a second."""
    deadline = time.monotonic() + timeout_s
    last: tuple[float, ...] = ()
    still_since = time.monotonic()
    now: dict[str, dict[str, float]] = {}
    while time.monotonic() < deadline:
        now = {n: worker_metrics(p) for n, p in ports.items()}
        state = tuple(now[n].get(MESSAGES, 0.0) for n in ports)
        if state != last or any(now[n].get(INFLIGHT) for n in ports):
            last, still_since = state, time.monotonic()
        elif time.monotonic() - still_since >= 1.0:
            break
        time.sleep(0.1)
    return now


def rekeyed(photos: Sequence[Photo], prefix: str) -> list[Photo]:
    return [
        dataclasses.replace(p, key=f"{prefix}{i:05d}{Path(p.key).suffix}")
        for i, p in enumerate(photos)
    ]


# --- report --------------------------------------------------------------------------


def _spans(stages: Sequence[Stages]) -> list[list[float]]:
    """Per image, seconds: ingest, to caption, to the embed batch, to seen."""
    out: list[list[float]] = [[], [], [], []]
    for st in stages:
        if st.media_at is None or st.caption_at is None or st.embedding_at is None:
            continue
        out[0].append(st.media_at - st.put_done)
        out[1].append(st.caption_at - st.media_at)
        out[2].append(st.embedding_at - st.caption_at)
        out[3].append(st.searchable_at - st.embedding_at)
    return out


def _ms(seconds: float, count: int) -> str:
    return f"{1000 * seconds / count:.1f}"


@dataclass
class Report:
    args: argparse.Namespace
    machine: dict[str, str]
    quiet: list[str]
    corpora: dict[str, list[Photo]]
    generate_s: float
    bare: BareModels
    start: StartStop
    alone: list[PipelineRun]  # one image each, into an idle pipeline (the first: cold)
    burst: PipelineRun
    paced: list[PipelineRun]  # at a fraction of the bare rate, then of the burst rate

    @property
    def runs(self) -> list[PipelineRun]:
        return [self.burst, *self.paced]

    def markdown(self) -> str:
        sections = [
            self._header(),
            self._bare(),
            self._pipeline(),
            self._stages(),
            self._cpu(),
            self._workers(),
        ]
        return "\n\n".join(sections) + "\n"

    def _header(self) -> str:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        mix = corpus_mix(self.corpora["burst"])
        machine = "\n".join(f"- {k}: {v}" for k, v in self.machine.items())
        quiet = "\n".join(f"- {line}" for line in self.quiet)
        others = ", ".join(
            f"{name} {len(c)}" for name, c in self.corpora.items() if name != "burst"
        )
        models = ModelSettings()
        return (
            f"## Pipeline, {when}\n\n{machine}\n\nQuiet checks (before each timed phase, "
            f"while this run was idle):\n\n{quiet}\n\n"
            f"Corpora, all distinct photos (no duplicates: every one gets captioned): burst "
            f"{len(self.corpora['burst'])}, {corpus_bytes(self.corpora['burst']) / MB:.1f} MB "
            f"({mix}); {others} more of the same mix (other seeds); generated in "
            f"{self.generate_s:.1f} s, outside every timing. Models: captioner "
            f"`{models.captioner}` (EfficientNet-Lite0), text embedder all-MiniLM-L6-v2 fp32, "
            f"device {models.device}; torch threads per process {self.bare.torch_threads}. "
            f"Uploads: {self.args.threads} threads. Stack start {self.start.start_s:.1f} s. "
            + (
                f"Stack environment: `{' '.join(self.args.stack_env)}`."
                if self.args.stack_env
                else "Stack environment: as `glimpse up` (nothing added)."
            )
        )

    def _bare(self) -> str:
        b = self.bare
        rates = sorted(r.per_s for r in b.rounds)
        decode, predict, embed = b.split_ms

        def row(label: str, timed: Timed, note: str, per_s: float | None = None) -> list[str]:
            rate = f"{per_s if per_s is not None else timed.per_s:.1f}"
            return [
                label,
                str(timed.count),
                f"{timed.wall_s:.2f}",
                f"**{rate}**" if per_s is not None else rate,
                f"{timed.wall_ms:.1f}",
                f"{timed.cpu_ms:.1f}",
                note,
            ]

        rows = [
            row(
                "**decode + caption + embed, one image at a time**",
                b.chain,
                f"median of {len(rates)} rounds ({rates[0]:.1f} … {rates[-1]:.1f}/s); "
                f"decode {decode:.1f} + predict {predict:.1f} + embed {embed:.1f} ms",
                b.chain_per_s,
            ),
            row(
                "same, `torch.set_num_threads(1)`",
                b.one_thread,
                "one core: what each worker could do next to the others",
            ),
            row("captioner alone (`predict([image])`)", b.captioner, "decoded thumbnails"),
            row(
                "embedder alone, 1 caption per call",
                b.embedder_one,
                f"{b.distinct_captions} distinct captions",
            ),
            row(
                f"embedder alone, batches of {BATCH_SIZE}",
                b.embedder_batched,
                "as the embed worker can batch",
            ),
            row(
                "for scale: `validate_media` (ingest's share)",
                b.validate,
                "one thread; the originals → the thumbnails above",
            ),
        ]
        whole = 1 / (1 / b.chain_per_s + b.validate.wall_s / b.validate.count)
        return (
            f"Bare models in one process, on the burst corpus' thumbnails (512 px, as ingest "
            f"makes them); model load {b.load_s:.1f} s, untimed warm-up; torch "
            f"{b.torch_threads} threads unless said; other processes used "
            f"{100 * b.others_busy:.0f} % of a core meanwhile. CPU = this process, all "
            "threads:\n\n"
            + table(
                [
                    "measurement",
                    "images",
                    "seconds",
                    "images/s",
                    "ms/image",
                    "CPU ms/image",
                    "note",
                ],
                rows,
            )
            + f"\n\nFor scale, the whole chain's compute one image at a time (validate, "
            f"then caption + embed): {whole:.1f} images/s."
        )

    def _pipeline(self) -> str:
        alone = [run.latencies[0] for run in self.alone if run.latencies]
        rows = [
            [
                "one image at a time, idle pipeline (first one excluded)",
                str(len(alone[1:])),
                "after the previous one",
                "",
                "",
                "",
                *(f"{percentile(alone[1:], q):.2f}" for q in (50, 90, 99)),
                f"{max(alone[1:], default=float('nan')):.2f}",
            ]
        ]
        for run in self.runs:
            lat = run.latencies
            rows.append(
                [
                    run.name,
                    str(len(lat)) + (f" ({len(run.failed)} failed)" if run.failed else ""),
                    f"{run.rate:.1f}" if run.rate else "all at once",
                    f"{run.put_rate:.1f}",
                    f"{run.window_s:.1f}",
                    f"{run.per_s:.1f}",
                    *(f"{percentile(lat, q):.2f}" for q in (50, 90, 99)),
                    f"{max(lat, default=float('nan')):.2f}",
                ]
            )
        ratio = self.burst.per_s / self.bare.chain_per_s
        verdicts = "; ".join(
            f"{run.name}: {percentile(run.latencies, 50):.2f} s "
            f"({'meets' if percentile(run.latencies, 50) <= GOAL_P50_S else 'misses'})"
            for run in self.paced
        )
        cold = f"{alone[0]:.2f} s" if alone else "n/a"
        failures = [
            f"{run.name}: {key}: {why}"
            for run in (*self.alone, *self.runs)
            for key, why in sorted(run.failed.items())[:5]
        ]
        return (
            "Upload → searchable on the embedded stack (latency: the image's PUT returned → "
            f"its text embedding visible, polled every {1000 * POLL_S:.0f} ms; window: first "
            "PUT started → last image searchable; images/s over the window):\n\n"
            + table(
                [
                    "run",
                    "images",
                    "target PUT/s",
                    "PUT/s",
                    "window s",
                    "images/s",
                    "p50 s",
                    "p90 s",
                    "p99 s",
                    "max s",
                ],
                rows,
            )
            + f"\n\nThe first image after the stack started (cold): {cold}."
            + f"\n\n**p50 latency, paced** (goal ≤ {GOAL_P50_S:.0f} s): {verdicts}. "
            "A paced run faster than the pipeline's burst rate builds a backlog, and its "
            "latency grows with the run's length."
            + f"\n\n**burst pipeline / bare caption+embed = {self.burst.per_s:.1f} / "
            f"{self.bare.chain_per_s:.1f} = {ratio:.2f}** (goal ≥ {GOAL_RATIO}: "
            f"{'meets' if ratio >= GOAL_RATIO else 'below'})"
            + ("\n\nFailures:\n\n" + "\n".join(f"- {f}" for f in failures) if failures else "")
        )

    def _stages(self) -> str:
        labels = [
            "PUT returned → media row (S3 event to Kafka, ingest batch wait, S3 GET, "
            "validate, thumbnail PUT)",
            "media row → caption row (rest of the ingest batch, Kafka, caption batch wait, "
            "S3 GET, decode, predict of the whole batch)",
            "caption row → embed batch starts (rest of the caption batch, Kafka, embed batch wait)",
            "embed batch starts → seen searchable (embed of the batch, write, commit, poll)",
        ]
        alone = _spans([st for run in self.alone[1:] for st in run.stages])
        spans = [_spans(run.stages) for run in self.runs]
        rows = [
            [
                label,
                f"{percentile(alone[i], 50):.2f}",
                *(f"{percentile(s[i], 50):.2f} / {percentile(s[i], 90):.2f}" for s in spans),
            ]
            for i, label in enumerate(labels)
        ]
        return (
            "Where the latency goes, per image, from the rows' `created_at`, i.e. the start "
            "of the transaction that wrote them: ingest's and caption's begin after the "
            "work (validation; predict of the batch), embed's before it (its first query "
            "precedes the embedding); seconds, p50 / p90:\n\n"
            + table(
                ["stage", "one at a time, p50", *(run.name for run in self.runs)],
                rows,
            )
        )

    def _cpu(self) -> str:
        cores = psutil.cpu_count() or 1
        runs, burst = self.runs, self.burst
        names = sorted(burst.cpu_s, key=lambda n: -burst.cpu_s[n])
        rows = [[name, *(c for run in runs for c in _cpu_cells(run, name))] for name in names]
        for label in ("**total**", "other processes"):
            cells = [label]
            for run in runs:
                total = sum(run.cpu_s.values())
                value = (
                    total
                    if label == "**total**"
                    else max(0.0, run.busy * cores * run.window_s - total)
                )
                cells += [f"{value:.1f} ({of_one_core(value, run.window_s)})", ""]
            rows.append(cells)
        header = ["process (with children)"]
        for run in runs:
            header += [f"{run.name}: CPU s (of one core)", "waited s"]
        per_image = [
            (name, 1000 * burst.cpu_s[name] / len(burst.latencies))
            for name in names
            if burst.cpu_s[name] >= 0.001 * len(burst.latencies)
        ]
        split = ", ".join(f"{name} {ms:.0f}" for name, ms in per_image)
        windows = ", ".join(f"{run.name} {run.window_s:.1f} s" for run in runs)
        busy = ", ".join(f"{run.name} {100 * run.busy:.0f} %" for run in runs)
        return (
            f"CPU per part over each window ({windows}; {cores} cores; 100 % = one core busy "
            "all along; waited = runnable but no free core). Machine busy, of all cores: "
            f"{busy}. 'Other processes' is what the machine did besides this run.\n\n"
            + table(header, rows)
            + f"\n\nBurst CPU per image, ms: {split} (total "
            f"{1000 * sum(burst.cpu_s.values()) / len(burst.latencies):.0f} ms, on {cores} "
            f"cores); bare, CPU: {self.bare.chain.cpu_ms:.0f} ms caption + embed with "
            f"{self.bare.torch_threads} threads, {self.bare.one_thread.cpu_ms:.0f} ms with 1, "
            f"{self.bare.validate.cpu_ms:.0f} ms validation."
        )

    def _workers(self) -> str:
        rows = []
        for run in self.runs:
            for worker in WORKERS:
                m = run.metrics.get(worker, {})
                batches, messages = m.get(BATCHES, 0.0), m.get(MESSAGES, 0.0)
                inside = m.get(IN_BATCHES, 0.0)
                cpu = run.cpu_s.get(worker, 0.0)
                rows.append(
                    [
                        f"{run.name} / {worker}",
                        f"{batches:.0f}",
                        f"{messages:.0f}",
                        f"{messages / batches if batches else 0:.1f}",
                        f"{inside:.1f}",
                        f"{100 * inside / run.window_s:.0f} %",
                        f"{1000 * inside / messages if messages else 0:.0f}",
                        f"{1000 * cpu / len(run.latencies):.0f}",
                    ]
                )
        return (
            "Workers' own /metrics over each run (ingest's messages are S3 events: besides "
            "the upload's own, cheap skipped ones such as its thumbnail's):\n\n"
            + table(
                [
                    "run / worker",
                    "batches",
                    "messages",
                    "per batch",
                    "s inside batches",
                    "of window",
                    "wall ms per message",
                    "CPU ms per image",
                ],
                rows,
            )
        )


def _cpu_cells(run: PipelineRun, name: str) -> list[str]:
    cpu, wait = run.cpu_s.get(name, 0.0), run.wait_s.get(name)
    return [
        f"{cpu:.1f} ({of_one_core(cpu, run.window_s)})",
        "" if wait is None else f"{wait:.1f}",
    ]


# --- main ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=500, help="photos in the burst run")
    parser.add_argument("--paced-count", type=int, default=120, help="photos per paced run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the bare chain")
    parser.add_argument("--large-every", type=int, default=15, help="every Nth is 4000x3000")
    parser.add_argument("--png-every", type=int, default=25, help="every Nth is a PNG")
    parser.add_argument("--threads", type=int, default=8, help="concurrent uploads")
    parser.add_argument(
        "--pace-fraction",
        type=float,
        default=0.5,
        help="paced runs' PUT rate: this fraction of the bare caption+embed rate, then "
        "of the burst run's rate",
    )
    parser.add_argument("--alone", type=int, default=4, help="single images before the runs")
    parser.add_argument("--max-load", type=float, default=1.5, help="quiet: 1-min load avg")
    parser.add_argument("--quiet-timeout", type=float, default=240, help="max wait for quiet")
    parser.add_argument(
        "--idle-timeout", type=float, default=60, help="max wait for idle cores, per phase"
    )
    parser.add_argument(
        "--stack-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the stack's processes only (not the bare models), e.g. "
        "OMP_NUM_THREADS=1; repeatable",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300, help="max seconds per run")
    add_output_args(parser)
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary home")
    return parser.parse_args(argv)


def generate(args: argparse.Namespace) -> tuple[dict[str, list[Photo]], float]:
    """Distinct corpora for each run; the same seed gives the same bytes."""
    started = time.perf_counter()
    sizes = {
        "burst": args.count,
        "paced (bare)": args.paced_count,
        "paced (burst)": args.paced_count,
        "alone": args.alone,
    }
    corpora = {}
    for offset, (name, count) in enumerate(sizes.items()):
        large_every, png_every = (0, 0) if name == "alone" else (args.large_every, args.png_every)
        photos = make_corpus(count, large_every, png_every, args.seed + offset)
        slug = name.replace(" ", "-").replace("(", "").replace(")", "")
        corpora[name] = rekeyed(photos, f"pipeline/{slug}/")
    return corpora, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    quiet = [wait_for_low_load(args.max_load, args.quiet_timeout)]
    machine = machine_info()
    say(f"generating {args.count} + 2 x {args.paced_count} + {args.alone} photos …")
    corpora, generate_s = generate(args)

    say("thumbnails (validate_media, timed) …")
    thumbnails, validate = make_thumbnails(corpora["burst"])
    quiet.append(wait_for_idle_cpus("bare models", timeout_s=args.idle_timeout))
    say("bare models …")
    bare = bench_bare_models(thumbnails, validate, args.rounds)
    del thumbnails
    gc.collect()
    say(f"  decode + caption + embed: {bare.chain_per_s:.1f} images/s")

    # The stack's processes inherit this process' environment; the bare models above
    # ran without it (torch read its thread settings when it started).
    os.environ.update(dict(pair.split("=", 1) for pair in args.stack_env))
    home = Path(tempfile.mkdtemp(prefix="glimpse-bench-pipeline-"))
    try:
        settings = private_settings(home)
        start = StartStop()
        say(f"starting the stack on {home} …")
        with running_stack(settings, start) as (stack, s):
            client = s3_client(s, args.threads)
            client.list_objects_v2(Bucket=s.s3.bucket, MaxKeys=1)  # connect first
            say(f"  ready in {start.start_s:.1f} s; {args.alone} images one at a time …")
            alone = [
                run_pipeline(f"alone {i}", stack, s, client, [photo], 1, None, args.timeout)
                for i, photo in enumerate(corpora["alone"])
            ]
            say(f"  latencies {', '.join(f'{run.latencies[0]:.2f}' for run in alone)} s")

            def timed(name: str, rate: float | None) -> PipelineRun:
                note = wait_for_idle_cpus(name, timeout_s=args.idle_timeout)
                quiet.append(note)
                photos = corpora[name]
                say(f"{name}: {len(photos)} images at {f'{rate:.1f}/s' if rate else 'once'} …")
                run = run_pipeline(
                    name, stack, s, client, photos, args.threads, rate, args.timeout, note
                )
                say(
                    f"  {run.per_s:.1f} images/s, p50 {percentile(run.latencies, 50):.2f} s, "
                    f"p99 {percentile(run.latencies, 99):.2f} s"
                )
                return run

            burst = timed("burst", None)
            paced = [
                timed("paced (bare)", args.pace_fraction * bare.chain_per_s),
                timed("paced (burst)", args.pace_fraction * burst.per_s),
            ]
    finally:
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)

    report = Report(args, machine, quiet, corpora, generate_s, bare, start, alone, burst, paced)
    markdown = report.markdown()
    publish(markdown, args)


if __name__ == "__main__":
    main()
