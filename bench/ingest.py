"""Ingest benchmark: bare validation vs. end to end on the embedded stack, start times, RSS.

    python -m bench.ingest [--count 300] [--threads 8] [--warm-runs 3] [--no-record]

One run, in this order:

1. generates a deterministic, duplicate-free photo corpus (not timed);
2. validates it in-process with ``validate_media`` on one pinned core: the ceiling
   for one ingest worker;
3. starts the embedded stack on a fresh home (a cold ``glimpse up``), uploads the
   corpus with boto3 from several threads and times first PUT → last ``media`` row,
   with the CPU time of every part over that window; then the RSS of every part;
4. stops it and starts it again on the same home (a warm ``glimpse up``), a few times.

Prints Markdown tables and appends them, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import numpy as np
import PIL
import psutil
import psycopg
from botocore.config import Config
from PIL import ExifTags, Image, features
from prometheus_client.parser import text_string_to_metric_families

from glimpse.config import LimitsSettings, Settings, StackSettings
from glimpse.media import validate_media
from glimpse.stack.ports import private_settings as stack_settings_with_free_ports
from glimpse.stack.supervisor import EmbeddedStack

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PREFIX = "bench/"
MB = 1_000_000
MIB = 1024 * 1024
GOAL_RATIO = 0.8
GOAL_WARM_S = 10.0


# --- corpus --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Photo:
    key: str
    data: bytes
    mime: str


def make_corpus(count: int, large_every: int, png_every: int, seed: int) -> list[Photo]:
    """``count`` distinct photos: mostly 1600x1200 JPEGs with camera EXIF, every
    ``large_every``-th a 4000x3000 (12 MP) JPEG, every ``png_every``-th a PNG.
    The same seed gives the same bytes."""
    # One generator per photo, seeded by (seed, index): the bytes do not depend on the
    # order the threads finish in. numpy and Pillow release the GIL, so threads help.
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return list(pool.map(lambda i: _photo(i, seed, large_every, png_every), range(count)))


def _photo(index: int, seed: int, large_every: int, png_every: int) -> Photo:
    rng = np.random.default_rng([seed, index])
    if png_every and index % png_every == png_every - 1:
        png = _encode_png(_pixels(rng, 1600, 1200))
        return Photo(f"{PREFIX}{index:05d}.png", png, "image/png")
    large = bool(large_every) and index % large_every == large_every - 1
    width, height = (4000, 3000) if large else (1600, 1200)
    jpeg = _encode_jpeg(_pixels(rng, width, height), index)
    return Photo(f"{PREFIX}{index:05d}.jpg", jpeg, "image/jpeg")


def _pixels(rng: np.random.Generator, width: int, height: int) -> np.ndarray[Any, Any]:
    """Photo-like pixels: smooth colour regions, some texture, a sky-to-ground gradient
    and sensor noise. Flat or pure-noise images would compress (and decode) unlike
    photos and make the numbers meaningless."""
    blobs = _upscaled(rng, 8, 6, width, height, Image.Resampling.BICUBIC)
    texture = _upscaled(rng, width // 16, height // 16, width, height, Image.Resampling.BILINEAR)
    gradient = np.linspace(-30, 30, height, dtype=np.float32)[:, None, None]
    noise = rng.standard_normal((height, width, 1), dtype=np.float32) * 6
    mixed = blobs * 0.75 + texture * 0.25 + gradient + noise
    return np.clip(mixed, 0, 255).astype(np.uint8)


def _upscaled(
    rng: np.random.Generator,
    small_w: int,
    small_h: int,
    width: int,
    height: int,
    resample: Image.Resampling,
) -> np.ndarray[Any, Any]:
    tiny = Image.fromarray(rng.integers(0, 256, (small_h, small_w, 3), dtype=np.uint8))
    return np.asarray(tiny.resize((width, height), resample), dtype=np.float32)


def _encode_jpeg(pixels: np.ndarray[Any, Any], index: int) -> bytes:
    # Camera EXIF like a phone's, so the EXIF path runs; every 4th is a portrait shot
    # stored sideways (orientation 6), so thumbnails get rotated like real ones.
    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "BenchCam", f"Model {index % 3}"
    exif[ExifTags.Base.Orientation] = 6 if index % 4 == 0 else 1
    exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    exif_ifd[ExifTags.Base.DateTimeOriginal] = (
        f"2024:07:{1 + index % 28:02d} 12:{index % 60:02d}:00"
    )
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def _encode_png(pixels: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def corpus_bytes(corpus: Sequence[Photo]) -> int:
    return sum(len(p.data) for p in corpus)


# --- 1. bare validation --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BareResult:
    seconds: float
    cpu_seconds: float
    objects: int
    nbytes: int

    @property
    def per_s(self) -> float:
        return self.objects / self.seconds


def bench_bare(corpus: Sequence[Photo], warmup: Photo) -> BareResult:
    """``validate_media`` over the corpus on this thread, pinned to one core."""
    limits = LimitsSettings()
    validate_media(warmup.data, limits)  # libmagic and Pillow plugins load on first use
    with _pinned_to_one_core():
        wall, cpu = time.perf_counter(), time.thread_time()
        for photo in corpus:
            validate_media(photo.data, limits)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    return BareResult(wall, cpu, len(corpus), corpus_bytes(corpus))


@contextlib.contextmanager
def _pinned_to_one_core() -> Iterator[None]:
    # pid 0 is this thread only: nothing else is pinned, and the stack started later
    # (its children inherit affinity) is not, because the old mask is restored.
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# --- the embedded stack --------------------------------------------------------------

_STEP_DONE = re.compile(r"^\s+(.+) ready in ([\d.]+)s$")


def private_settings(home: Path, weed_memory_limit: str | None = None) -> Settings:
    """Default settings (as ``glimpse up`` uses them) with a private home and every port
    free, so the bench never collides with a running glimpse or a test stack."""
    settings = stack_settings_with_free_ports(home)
    if weed_memory_limit:
        settings.stack.weed_memory_limit = weed_memory_limit
    return settings


@dataclass
class StartStop:
    """One ``start()`` … ``stop()`` of the stack: wall times and the slowest steps."""

    start_s: float = 0.0
    stop_s: float = 0.0
    steps: list[tuple[str, float]] = field(default_factory=list)


@contextlib.contextmanager
def running_stack(
    settings: Settings, timing: StartStop
) -> Iterator[tuple[EmbeddedStack, Settings]]:
    """Start the stack (timing ``start()`` to its return: every part is ready then,
    ingest and the API included) and always stop it again."""

    def progress(message: str) -> None:
        if done := _STEP_DONE.match(message):
            timing.steps.append((done[1], float(done[2])))

    stack = EmbeddedStack(settings, progress=progress)
    try:
        started = time.perf_counter()
        resolved = stack.start()
        stack.wait_all_ready()  # start() returns while workers still load their models
        timing.start_s = time.perf_counter() - started
        yield stack, resolved
    finally:
        stopping = time.perf_counter()
        stack.stop()
        timing.stop_s = time.perf_counter() - stopping


# --- process accounting --------------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its descendants, including those already reaped
    (Postgres backends come and go; their time lands in ``children_*``)."""
    total = 0.0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_runqueue_wait_s(pid: int) -> float:
    """Seconds the tree's threads were runnable but waiting for a CPU (schedstat)."""
    total_ns = 0
    for proc in _tree(pid):
        for stat in Path(f"/proc/{proc.pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total_ns += int(stat.read_text().split()[1])
    return total_ns / 1e9


def tree_memory(pid: int) -> tuple[int, int, int]:
    """(processes, RSS, PSS) of the tree. PSS splits shared pages among the processes
    sharing them, so unlike RSS it can be summed (Postgres' shared buffers)."""
    rss = pss = count = 0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            info = proc.memory_full_info()
            rss, pss, count = rss + info.rss, pss + info.pss, count + 1
    return count, rss, pss


def part_pids(stack: EmbeddedStack) -> dict[str, int]:
    return {
        p.name: p.process.pid
        for p in stack.parts
        if p.process.pid is not None and p.process.is_running()
    }


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    cpu_s: dict[str, float]
    wait_s: dict[str, float]
    system: Any  # psutil.cpu_times(): machine-wide, to see whether both cores were busy

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSnapshot:
        me = psutil.Process().cpu_times()
        cpu = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        # this process: the uploader threads and the row poller (its own time only,
        # its children are the parts above)
        cpu["bench (uploader, poller)"] = me.user + me.system
        wait = {name: tree_runqueue_wait_s(pid) for name, pid in pids.items()}
        return cls(cpu, wait, psutil.cpu_times())


def machine_busy_fraction(before: Any, after: Any) -> float:
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (after.iowait - before.iowait)
    return 1 - idle / total if total else 0.0


# --- 2. end to end -------------------------------------------------------------------


@dataclass
class EndToEnd:
    objects: int
    nbytes: int
    upload_s: float
    total_s: float
    statuses: dict[str, int]
    cpu_s: dict[str, float]
    wait_s: dict[str, float]
    busy: float
    metrics: dict[str, float]

    @property
    def per_s(self) -> float:
        return self.objects / self.total_s


def s3_client(s: Settings, threads: int) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=s.s3.endpoint,
        aws_access_key_id=s.s3.access_key,
        aws_secret_access_key=s.s3.secret_key,
        region_name=s.s3.region,
        config=Config(
            max_pool_connections=threads,  # one connection per uploader thread
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


class Uploader(threading.Thread):
    """PUTs the corpus from ``threads`` threads, in the background, so the main thread
    can watch rows appear meanwhile; ``seconds`` is first PUT → last PUT answered."""

    def __init__(self, client: S3Client, bucket: str, corpus: Sequence[Photo], threads: int):
        super().__init__(name="uploader", daemon=True)
        self.client, self.bucket, self.corpus, self.threads = client, bucket, corpus, threads
        self.seconds: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="put") as pool:
                list(pool.map(self._put, self.corpus))
            self.seconds = time.perf_counter() - started
        except BaseException as exc:
            self.error = exc

    def _put(self, photo: Photo) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=photo.key, Body=photo.data, ContentType=photo.mime
        )


def count_rows(conn: psycopg.Connection[Any], bucket: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM media WHERE bucket = %s AND key LIKE %s", (bucket, PREFIX + "%")
    ).fetchone()
    return int(row[0]) if row else 0


def status_counts(conn: psycopg.Connection[Any], bucket: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM media WHERE bucket = %s AND key LIKE %s GROUP BY status",
        (bucket, PREFIX + "%"),
    ).fetchall()
    return {str(status): int(n) for status, n in rows}


def wait_for_rows(
    conn: psycopg.Connection[Any], bucket: str, want: int, uploader: Uploader, timeout_s: float
) -> None:
    """Until every uploaded key has a row (any status: a rejection is an outcome too).
    Polls every 50 ms: the end time is that precise, and one count(*) costs Postgres
    next to nothing."""
    deadline = time.monotonic() + timeout_s
    while (seen := count_rows(conn, bucket)) < want:
        if uploader.error is not None:
            raise RuntimeError(f"upload failed: {uploader.error!r}") from uploader.error
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {seen} of {want} media rows after {timeout_s:.0f}s")
        time.sleep(0.05)


def bench_end_to_end(
    stack: EmbeddedStack, s: Settings, corpus: Sequence[Photo], threads: int, timeout_s: float
) -> EndToEnd:
    assert s.database.url
    pids = part_pids(stack)
    client = s3_client(s, threads)
    client.list_objects_v2(Bucket=s.s3.bucket, MaxKeys=1)  # connect before the clock starts
    with psycopg.connect(s.database.url, autocommit=True) as conn:
        metrics_before = worker_metrics(s.stack.ingest_health_port)
        before = CpuSnapshot.take(pids)
        uploader = Uploader(client, s.s3.bucket, corpus, threads)
        started = time.perf_counter()
        uploader.start()
        wait_for_rows(conn, s.s3.bucket, len(corpus), uploader, timeout_s)
        total_s = time.perf_counter() - started
        after = CpuSnapshot.take(pids)
        uploader.join()
        statuses = status_counts(conn, s.s3.bucket)
    metrics_after = settled_metrics(s.stack.ingest_health_port, metrics_before, len(corpus))
    assert uploader.seconds is not None
    return EndToEnd(
        objects=len(corpus),
        nbytes=corpus_bytes(corpus),
        upload_s=uploader.seconds,
        total_s=total_s,
        statuses=statuses,
        cpu_s={k: after.cpu_s[k] - before.cpu_s[k] for k in after.cpu_s},
        wait_s={k: after.wait_s[k] - before.wait_s.get(k, 0.0) for k in after.wait_s},
        busy=machine_busy_fraction(before.system, after.system),
        metrics={k: v - metrics_before.get(k, 0.0) for k, v in metrics_after.items()},
    )


def settled_metrics(
    port: int, before: dict[str, float], objects: int, timeout_s: float = 30
) -> dict[str, float]:
    """The worker's metrics once it is idle. A batch is counted only after its outputs
    are sent and its offsets committed, i.e. after its rows appeared, and each upload
    brings a second, cheap event (its thumbnail's, skipped): wait until the count of
    messages has stopped moving for a second with nothing in flight."""
    deadline = time.monotonic() + timeout_s
    now: dict[str, float] = {}
    last, still_since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        now = worker_metrics(port)
        messages = now.get(_MESSAGES, 0) - before.get(_MESSAGES, 0)
        if messages != last or now.get(_INFLIGHT):
            last, still_since = messages, time.monotonic()
        elif messages >= objects and time.monotonic() - still_since >= 1.0:
            break
        time.sleep(0.1)
    return now


_MESSAGES = "glimpse_worker_batch_size_sum"
_INFLIGHT = "glimpse_worker_inflight_messages"


def worker_metrics(port: int) -> dict[str, float]:
    """The ingest worker's Prometheus samples, keyed ``name{labels}`` (service dropped)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(
                f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "service"
            )
            values[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return values


# --- 4. memory -----------------------------------------------------------------------


def memory_by_part(stack: EmbeddedStack) -> dict[str, tuple[int, int, int]]:
    return {name: tree_memory(pid) for name, pid in part_pids(stack).items()}


# --- machine -------------------------------------------------------------------------


def machine_info(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The machine and the code measured; ``extra`` lines go before the commit."""
    memory = psutil.virtual_memory().total
    # Anything else running skews every number below: measure it, and say so.
    busy = psutil.cpu_percent(interval=2.0)
    return {
        "CPU": _cpu_model(),
        "cores": f"{psutil.cpu_count(logical=True)} logical, "
        f"{psutil.cpu_count(logical=False)} physical",
        "RAM": f"{memory / (1 << 30):.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "Pillow": f"{PIL.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')})",
        **(extra or {}),
        "glimpse commit": _git_commit(),
        "before the run": f"machine {busy:.0f} % busy (other processes), load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    # Uncommitted changes to glimpse are measured too: say so (the bench's own are not).
    dirty = git("status", "--porcelain", "--", ".", ":(exclude)bench")
    return commit + (" (with uncommitted changes)" if dirty else "")


# --- report --------------------------------------------------------------------------


@dataclass
class Report:
    args: argparse.Namespace
    machine: dict[str, str]
    corpus: Sequence[Photo]
    generate_s: float
    bare: BareResult
    e2e: EndToEnd
    memory: dict[str, tuple[int, int, int]]
    cold: StartStop
    warm: list[StartStop]

    def markdown(self) -> str:
        sections = [
            self._header(),
            self._throughput(),
            self._cpu(),
            self._worker(),
            self._starts(),
            self._memory(),
        ]
        return "\n\n".join(sections) + "\n"

    def _header(self) -> str:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        kinds: dict[str, int] = {}
        for photo in self.corpus:
            kind = _kind_of(photo)
            kinds[kind] = kinds.get(kind, 0) + 1
        mix = ", ".join(f"{n} x {kind}" for kind, n in kinds.items())
        machine = "\n".join(f"- {k}: {v}" for k, v in self.machine.items())
        weed_limit = self.args.weed_memory_limit or StackSettings().weed_memory_limit
        return (
            f"## Ingest, {when}\n\n{machine}\n\n"
            f"Corpus: {len(self.corpus)} distinct photos, "
            f"{corpus_bytes(self.corpus) / MB:.1f} MB ({mix}); generated in "
            f"{self.generate_s:.1f} s, outside every timing. Uploads: {self.args.threads} "
            f"threads. SeaweedFS GOMEMLIMIT: {weed_limit}. "
            + (
                "Pipeline: ingest only (caption and embed stopped, as when they run on GPU nodes)."
                if self.args.ingest_only
                else "Pipeline: whole (caption and embed share the 2 cores with ingest)."
            )
        )

    def _throughput(self) -> str:
        bare, e2e = self.bare, self.e2e
        ratio = e2e.per_s / bare.per_s
        verdict = "meets" if ratio >= GOAL_RATIO else "below"
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(e2e.statuses.items()))
        return _table(
            ["measurement", "seconds", "objects/s", "MB/s", "note"],
            [
                [
                    "bare `validate_media`, 1 core",
                    f"{bare.seconds:.2f}",
                    f"{bare.per_s:.1f}",
                    f"{bare.nbytes / MB / bare.seconds:.1f}",
                    f"{1000 * bare.seconds / bare.objects:.0f} ms/object; "
                    f"CPU {bare.cpu_seconds:.2f} s",
                ],
                [
                    "upload only (boto3 PUTs)",
                    f"{e2e.upload_s:.2f}",
                    f"{e2e.objects / e2e.upload_s:.1f}",
                    f"{e2e.nbytes / MB / e2e.upload_s:.1f}",
                    "first PUT → last PUT answered",
                ],
                [
                    "end to end (PUT → media row)",
                    f"{e2e.total_s:.2f}",
                    f"{e2e.per_s:.1f}",
                    f"{e2e.nbytes / MB / e2e.total_s:.1f}",
                    f"rows: {statuses}",
                ],
            ],
        ) + (f"\n\n**end-to-end / bare = {ratio:.2f}** (goal ≥ {GOAL_RATIO}: {verdict})")

    def _cpu(self) -> str:
        e2e = self.e2e
        cores = psutil.cpu_count() or 1
        rows = [
            [
                name,
                f"{cpu:.1f}",
                _of_one_core(cpu, e2e.total_s),
                f"{e2e.wait_s[name]:.1f}" if name in e2e.wait_s else "",
            ]
            for name, cpu in sorted(e2e.cpu_s.items(), key=lambda kv: -kv[1])
        ]
        total = sum(e2e.cpu_s.values())
        rows.append(["**glimpse total**", f"{total:.1f}", _of_one_core(total, e2e.total_s), ""])
        # everything else on the machine (another test run, the kernel's own threads)
        outside = max(0.0, e2e.busy * cores * e2e.total_s - total)
        rows.append(["other processes", f"{outside:.1f}", _of_one_core(outside, e2e.total_s), ""])
        return (
            f"CPU during the end-to-end window ({e2e.total_s:.1f} s, {cores} cores; 100 % = one "
            f"core busy all along). Machine busy: {100 * e2e.busy:.0f} % of all cores.\n\n"
            + _table(
                ["process (with children)", "CPU s", "of one core", "waited for a CPU, s"], rows
            )
        )

    def _worker(self) -> str:
        m, e2e, bare = self.e2e.metrics, self.e2e, self.bare
        batches = m.get("glimpse_worker_batch_seconds_count", 0.0)
        in_batches = m.get("glimpse_worker_batch_seconds_sum", 0.0)
        messages = m.get("glimpse_worker_batch_size_sum", 0.0)
        worker_cpu = e2e.cpu_s.get("ingest", 0.0)
        per_object_ms = 1000 * worker_cpu / e2e.objects
        bare_ms = 1000 * bare.cpu_seconds / bare.objects
        return "\n".join(
            [
                "Ingest worker (its /metrics, and its CPU, over the same window):",
                "",
                f"- {batches:.0f} batches, {messages:.0f} messages, "
                f"{messages / batches if batches else 0:.1f} per batch; "
                f"{in_batches:.1f} s inside batches = {100 * in_batches / e2e.total_s:.0f} % "
                "of the window (the rest: waiting for events / collecting a batch)",
                f"- CPU per object: {per_object_ms:.0f} ms in the worker vs {bare_ms:.0f} ms for "
                f"bare validation: {per_object_ms - bare_ms:+.0f} ms of S3/SQL/Kafka client work",
                f"- worker wall per object inside batches: "
                f"{1000 * in_batches / messages if messages else 0:.0f} ms; it waited "
                f"{e2e.wait_s.get('ingest', 0.0):.1f} s in total for a free CPU",
            ]
        )

    def _starts(self) -> str:
        rows = [
            [
                "cold (fresh home)",
                f"{self.cold.start_s:.1f}",
                f"{self.cold.stop_s:.1f}",
                _slowest(self.cold),
            ]
        ]
        rows += [
            [f"warm #{i}", f"{w.start_s:.1f}", f"{w.stop_s:.1f}", _slowest(w)]
            for i, w in enumerate(self.warm, 1)
        ]
        worst = max((w.start_s for w in self.warm), default=float("nan"))
        verdict = "meets" if worst <= GOAL_WARM_S else "misses"
        return (
            "`glimpse up` (`EmbeddedStack.start()` until it returns: every part ready, "
            "ingest and API included):\n\n"
            + _table(["start", "start s", "stop s", "slowest steps (s)"], rows)
            + f"\n\nslowest warm start {worst:.1f} s (goal ≤ {GOAL_WARM_S:.0f} s: {verdict})"
        )

    def _memory(self) -> str:
        rows = [
            [name, str(n), f"{rss / MIB:.0f}", f"{pss / MIB:.0f}"]
            for name, (n, rss, pss) in self.memory.items()
        ]
        total_rss = sum(rss for _, rss, _ in self.memory.values())
        total_pss = sum(pss for _, _, pss in self.memory.values())
        rows.append(["**total**", "", f"{total_rss / MIB:.0f}", f"{total_pss / MIB:.0f}"])
        return (
            "Memory after the end-to-end run (process and children; RSS double-counts "
            "shared pages such as Postgres' shared buffers, PSS does not):\n\n"
            + _table(["part", "processes", "RSS MiB", "PSS MiB"], rows)
        )


def _of_one_core(cpu_s: float, wall_s: float) -> str:
    return f"{100 * cpu_s / wall_s:.0f} %"


def _kind_of(photo: Photo) -> str:
    if photo.mime == "image/png":
        return "1600x1200 PNG"
    with Image.open(io.BytesIO(photo.data)) as image:
        return f"{image.width}x{image.height} JPEG"


def _slowest(timing: StartStop, n: int = 3) -> str:
    steps = sorted(timing.steps, key=lambda s: -s[1])[:n]
    return ", ".join(f"{label} {seconds:.1f}" for label, seconds in steps)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def record(markdown: str, path: Path) -> None:
    if not path.exists():
        path.write_text(
            "# Benchmark results\n\nAppended by the benchmarks (see README.md); newest last.\n"
        )
    with path.open("a") as out:
        out.write("\n" + markdown)


# --- main ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=300, help="photos in the corpus")
    parser.add_argument("--large-every", type=int, default=15, help="every Nth is 4000x3000")
    parser.add_argument("--png-every", type=int, default=25, help="every Nth is a PNG")
    parser.add_argument("--threads", type=int, default=8, help="concurrent uploads")
    parser.add_argument("--warm-runs", type=int, default=3, help="warm starts to time")
    parser.add_argument(
        "--weed-memory-limit",
        help="GOMEMLIMIT for both SeaweedFS servers (default: the setting's default)",
    )
    parser.add_argument(
        "--ingest-only",
        action="store_true",
        help="stop caption and embed during the end-to-end run (ingest alone on the CPUs)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600, help="max seconds for ingest")
    add_output_args(parser)
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary home")
    return parser.parse_args(argv)


def publish(markdown: str, args: argparse.Namespace) -> None:
    """Print the run's Markdown; append it to ``args.results`` unless ``--no-record``."""
    print("\n" + markdown)
    if not args.no_record:
        record(markdown, args.results)
        say(f"appended to {args.results}")


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """``--results`` and ``--no-record``, as every benchmark takes them."""
    parser.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to append to")
    parser.add_argument("--no-record", action="store_true", help="print only, append nothing")


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    machine = machine_info()
    say(f"generating {args.count} photos …")
    started = time.perf_counter()
    corpus = make_corpus(args.count, args.large_every, args.png_every, args.seed)
    warmup = make_corpus(1, 0, 0, args.seed + 1_000_000)[0]
    generate_s = time.perf_counter() - started

    say("bare validation on one core …")
    bare = bench_bare(corpus, warmup)
    say(f"  {bare.per_s:.1f} objects/s")

    home = Path(tempfile.mkdtemp(prefix="glimpse-bench-"))
    try:
        settings = private_settings(home, args.weed_memory_limit)
        cold = StartStop()
        say(f"cold start on {home} …")
        with running_stack(settings, cold) as (stack, resolved):
            say(f"  ready in {cold.start_s:.1f}s; uploading and ingesting …")
            if args.ingest_only:
                for name in ("caption", "embed"):
                    stack.part(name).process.stop()
            e2e = bench_end_to_end(stack, resolved, corpus, args.threads, args.timeout)
            say(f"  {e2e.per_s:.1f} objects/s end to end")
            memory = memory_by_part(stack)
        warm = []
        for i in range(args.warm_runs):
            timing = StartStop()
            say(f"warm start #{i + 1} …")
            with running_stack(settings, timing):
                pass
            say(f"  ready in {timing.start_s:.1f}s, stopped in {timing.stop_s:.1f}s")
            warm.append(timing)
    finally:
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)

    report = Report(args, machine, corpus, generate_s, bare, e2e, memory, cold, warm)
    markdown = report.markdown()
    publish(markdown, args)


if __name__ == "__main__":
    main()
