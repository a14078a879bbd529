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
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import psycopg

from bench.common.corpus import PREFIX, Photo, corpus_bytes, corpus_mix, make_corpus
from bench.common.processes import CpuSnapshot, machine_busy_fraction, tree_memory
from bench.common.report import add_output_args, machine_info, of_one_core, publish, say, table
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
from glimpse.config import LimitsSettings, Settings, StackSettings
from glimpse.media import validate_media
from glimpse.stack.supervisor import EmbeddedStack

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

MB = 1_000_000
MIB = 1024 * 1024
GOAL_RATIO = 0.8
GOAL_WARM_S = 10.0


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
        messages = now.get(MESSAGES, 0) - before.get(MESSAGES, 0)
        if messages != last or now.get(INFLIGHT):
            last, still_since = messages, time.monotonic()
        elif messages >= objects and time.monotonic() - still_since >= 1.0:
            break
        time.sleep(0.1)
    return now


# --- 4. memory -----------------------------------------------------------------------


def memory_by_part(stack: EmbeddedStack) -> dict[str, tuple[int, int, int]]:
    return {name: tree_memory(pid) for name, pid in part_pids(stack).items()}


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
        mix = corpus_mix(self.corpus)
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
        return table(
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
                of_one_core(cpu, e2e.total_s),
                f"{e2e.wait_s[name]:.1f}" if name in e2e.wait_s else "",
            ]
            for name, cpu in sorted(e2e.cpu_s.items(), key=lambda kv: -kv[1])
        ]
        total = sum(e2e.cpu_s.values())
        rows.append(["**glimpse total**", f"{total:.1f}", of_one_core(total, e2e.total_s), ""])
        # everything else on the machine (another test run, the kernel's own threads)
        outside = max(0.0, e2e.busy * cores * e2e.total_s - total)
        rows.append(["other processes", f"{outside:.1f}", of_one_core(outside, e2e.total_s), ""])
        return (
            f"CPU during the end-to-end window ({e2e.total_s:.1f} s, {cores} cores; 100 % = one "
            f"core busy all along). Machine busy: {100 * e2e.busy:.0f} % of all cores.\n\n"
            + table(
                ["process (with children)", "CPU s", "of one core", "waited for a CPU, s"], rows
            )
        )

    def _worker(self) -> str:
        m, e2e, bare = self.e2e.metrics, self.e2e, self.bare
        batches = m.get(BATCHES, 0.0)
        in_batches = m.get(IN_BATCHES, 0.0)
        messages = m.get(MESSAGES, 0.0)
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
            + table(["start", "start s", "stop s", "slowest steps (s)"], rows)
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
            + table(["part", "processes", "RSS MiB", "PSS MiB"], rows)
        )


def _slowest(timing: StartStop, n: int = 3) -> str:
    steps = sorted(timing.steps, key=lambda s: -s[1])[:n]
    return ", ".join(f"{label} {seconds:.1f}" for label, seconds in steps)


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
