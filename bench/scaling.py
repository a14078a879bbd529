"""Scale-out benchmark: image pipeline throughput with 1, 2 and 4 processes per stage.

    python -m bench.scaling [--images 300] [--replicas 1,2,4] [--partitions 8] [--no-record]

For each replica count N, in one run and on the same corpus (bench.common.corpus, same
seed, same keys): a fresh embedded stack whose topics have ``--partitions`` partitions
runs N processes each of ingest, caption and embed (``stack.replicas``; caption and embed
split the cores between all their processes, ``glimpse.stack.workers``). The corpus is
PUT from 8 threads at once and timed until every image's text vector is stored.

Per stage (all its replicas together):

- **done at**: seconds from the first PUT until its last row (``media``, ``captions``:
  ``created_at``, the start of the transaction written after the work), for embed until
  the last text vector was seen (its transaction starts before the model runs), and
  the stage's images/s over that;
- **busy**: seconds inside batches (``glimpse_worker_batch_seconds``) over N x the
  window: a stage near 100 % never waited for input, so it bounds the pipeline;
- **model / rest**: of the seconds inside batches, how many the model took
  (``glimpse_model_inference_seconds``) and the rest: S3 reads, decoding, thumbnails
  and Postgres writes (for embed the rest is its Postgres write, HNSW insert included);
- **CPU**: of every process tree (replicas summed), and of Postgres, both SeaweedFS
  stores, the broker and the API: per image and as a share of one core.

The verdict names the bounding stage and whether the machine's cores were saturated
(more processes cannot help then) or a server was (Postgres, S3, the broker).
Prints Markdown and appends it, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.common import stack as bench_stack
from bench.common.corpus import Photo, corpus_bytes, corpus_mix, make_corpus
from bench.common.processes import CpuSnapshot, machine_busy_fraction
from bench.common.quiet import wait_for_idle_cpus, wait_for_low_load
from bench.common.report import add_output_args, machine_info, publish, report_header, say, table
from glimpse.config import ReplicaSettings, Settings
from glimpse.db.media import media_id
from glimpse.stack.ports import worker_replicas
from glimpse.stack.supervisor import EmbeddedStack
from glimpse.stack.workers import model_threads

STAGES = ("ingest", "caption", "embed")
MODEL_SECONDS = "glimpse_model_inference_seconds_sum"
# Servers of the embedded stack, by part name, as the report names them.
SERVERS = {
    "postgres": "Postgres",
    "s3-media": "S3 media store",
    "s3-broker": "broker's S3 store",
    "broker": "broker (tansu)",
    "search-api": "API",
}
# When ingest and caption wrote their last row (epoch seconds; each transaction begins
# after the stage's work), and how many images are searchable or failed.
_DONE_AT = """
SELECT extract(epoch FROM max(m.created_at)) AS ingest,
       extract(epoch FROM max(c.created_at)) AS caption,
       count(e.media_id) AS searchable,
       count(*) FILTER (WHERE m.status <> 'accepted') AS failed
FROM media m
LEFT JOIN captions c ON c.media_id = m.id
LEFT JOIN embeddings e ON e.media_id = m.id AND e.kind = 'text'
WHERE m.id = ANY(%s)
"""


@dataclass
class StageNumbers:
    done_s: float  # first PUT → the stage's last row
    batch_s: float  # inside batches, all replicas
    model_s: float  # of which in the model
    messages: float
    cpu_s: float  # all replicas' process trees


@dataclass
class Run:
    replicas: int
    threads: int  # torch threads per caption/embed process
    start_s: float
    window_s: float  # first PUT → last image searchable
    images: int
    failed: int
    stages: dict[str, StageNumbers]
    servers_cpu_s: dict[str, float]
    busy: float  # the whole machine, share of all cores over the window
    own: float  # this run's processes (stack and uploader), share of all cores

    @property
    def per_s(self) -> float:
        return self.images / self.window_s

    def busy_share(self, stage: str) -> float:
        return self.stages[stage].batch_s / (self.replicas * self.window_s)

    @property
    def bottleneck(self) -> str:
        return max(STAGES, key=self.busy_share)


def stage_of(settings: Settings) -> dict[str, str]:
    """Part name → its stage, for every worker process (replicas included)."""
    return {r.name: r.stage for r in worker_replicas(settings.stack)}


def summed(
    metrics: dict[str, dict[str, float]], names: dict[str, str], stage: str
) -> dict[str, float]:
    """The stage's replicas' metric deltas added up; the model's seconds over every model."""
    total: dict[str, float] = {}
    for part, values in metrics.items():
        if names[part] != stage:
            continue
        for key, value in values.items():
            name = MODEL_SECONDS if key.startswith(MODEL_SECONDS + "{") else key
            total[name] = total.get(name, 0.0) + value
    return total


def settled(ports: dict[str, int], timeout_s: float = 30) -> dict[str, dict[str, float]]:
    """Every worker's metrics once nothing is in flight and two reads a second apart
    agree (a batch is counted at its commit, a moment after its rows appear)."""
    deadline = time.monotonic() + timeout_s
    previous: dict[str, dict[str, float]] = {}
    while True:
        now = {part: bench_stack.worker_metrics(port) for part, port in ports.items()}
        moved = any(
            now[p].get(bench_stack.MESSAGES) != previous.get(p, {}).get(bench_stack.MESSAGES)
            for p in now
        )
        if (not moved and not any(m.get(bench_stack.INFLIGHT) for m in now.values())) or (
            time.monotonic() > deadline
        ):
            return now
        previous = now
        time.sleep(1.0)


def wait_done(url: str, ids: list[Any], timeout_s: float) -> dict[str, Any]:
    """Poll until every image is searchable or failed: when each stage was done (embed:
    now, when its last vector is seen; its row's time precedes its model's work)."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(_DONE_AT, (ids,)).fetchone()
            assert row is not None
            names = ("ingest", "caption", "searchable", "failed")
            done = dict(zip(names, row, strict=True))
            if done["searchable"] + done["failed"] >= len(ids):
                return {**done, "embed": time.time()}
            if time.monotonic() > deadline:
                raise TimeoutError(f"{done['searchable']} of {len(ids)} searchable in time")
            time.sleep(0.1)


def measure(replicas: int, photos: Sequence[Photo], args: argparse.Namespace) -> Run:
    home = Path(tempfile.mkdtemp(prefix=f"glimpse-bench-scaling-{replicas}-"))
    try:
        settings = bench_stack.private_settings(home)
        settings.kafka.partitions = args.partitions
        settings.stack.replicas = ReplicaSettings(ingest=replicas, caption=replicas, embed=replicas)
        settings.stack.ready_timeout_s = args.ready_timeout
        timing = bench_stack.StartStop()
        say(f"{replicas} per stage: starting the stack on {home} …")
        with bench_stack.running_stack(settings, timing, args.ready_timeout) as (stack, s):
            return upload_and_time(stack, s, replicas, photos, timing, args)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def upload_and_time(
    stack: EmbeddedStack,
    s: Settings,
    replicas: int,
    photos: Sequence[Photo],
    timing: bench_stack.StartStop,
    args: argparse.Namespace,
) -> Run:
    assert s.database.url
    names = stage_of(s)
    ports = {r.name: r.port for r in worker_replicas(s.stack) if r.stage in STAGES}
    pids = bench_stack.part_pids(stack)
    client = bench_stack.s3_client(s, 8)
    client.list_objects_v2(Bucket=s.s3.bucket, MaxKeys=1)  # connected before the clock
    say(f"  ready in {timing.start_s:.0f} s; " + wait_for_idle_cpus("upload", timeout_s=30))
    before_metrics = settled(ports)
    before = CpuSnapshot.take(pids)
    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda p: client.put_object(
                    Bucket=s.s3.bucket, Key=p.key, Body=p.data, ContentType=p.mime
                ),
                photos,
            )
        )
    ids = [media_id(s.s3.bucket, p.key) for p in photos]
    done = wait_done(s.database.url, ids, args.timeout)
    window = done["embed"] - started  # the last vector seen (reading CPU times takes a while)
    after = CpuSnapshot.take(pids)
    after_metrics = settled(ports)
    deltas = {
        part: {k: v - before_metrics[part].get(k, 0.0) for k, v in values.items()}
        for part, values in after_metrics.items()
    }
    cpu = {part: after.cpu_s[part] - before.cpu_s[part] for part in after.cpu_s}
    stages = {}
    for stage in STAGES:
        m = summed(deltas, names, stage)
        stages[stage] = StageNumbers(
            done_s=float(done[stage] or started) - started,
            batch_s=m.get(bench_stack.IN_BATCHES, 0.0),
            model_s=m.get(MODEL_SECONDS, 0.0),
            messages=m.get(bench_stack.MESSAGES, 0.0),
            cpu_s=sum(v for part, v in cpu.items() if names.get(part) == stage),
        )
    run = Run(
        replicas=replicas,
        threads=model_threads(s, psutil.cpu_count() or 1)["caption"],
        start_s=timing.start_s,
        window_s=window,
        images=int(done["searchable"]),
        failed=int(done["failed"]),
        stages=stages,
        servers_cpu_s={label: cpu.get(part, 0.0) for part, label in SERVERS.items()},
        busy=machine_busy_fraction(before.system, after.system),
        own=sum(cpu.values()) / (window * (psutil.cpu_count() or 1)),
    )
    busy = f"machine {100 * run.busy:.0f} % busy"
    say(f"  {run.per_s:.2f} images/s; bound by {run.bottleneck}; {busy}")
    return run


# --- report --------------------------------------------------------------------------

# What a stage's batch time holds besides its model.
REST = {
    "ingest": "S3 GET, validation, thumbnail PUT, Postgres",
    "caption": "thumbnail GET, decode, OCR/colour cues, Postgres",
    "embed": "its Postgres write, HNSW insert included",
}


def verdict(run: Run) -> str:
    stage = run.bottleneck
    numbers = run.stages[stage]
    model = numbers.model_s / numbers.batch_s if numbers.batch_s else 0.0
    server, server_cpu = max(run.servers_cpu_s.items(), key=lambda item: item[1])
    lines = [
        f"bound by **{stage}**: its processes were inside batches "
        f"{100 * run.busy_share(stage):.0f} % of the window, {100 * model:.0f} % of that in "
        f"the model, the rest ({REST[stage]}) {100 * (1 - model):.0f} %",
        f"busiest server {server}: {100 * server_cpu / run.window_s:.0f} % of one core",
    ]
    if run.busy >= 0.9 and run.own < 0.7 * run.busy:
        lines.append(
            f"**the machine was busy with other work**: {100 * run.busy:.0f} % of all cores "
            f"busy, {100 * run.own:.0f} % by this run: not comparable with a quiet run"
        )
    elif run.busy >= 0.9:
        lines.append(
            f"**CPU-saturated**: {100 * run.busy:.0f} % of all cores busy; more processes "
            "only share the same cores"
        )
    return f"- {run.replicas} per stage: " + "; ".join(lines) + "."


def report(
    args: argparse.Namespace, machine: dict[str, str], photos: Sequence[Photo], runs: list[Run]
) -> str:
    base = runs[0].per_s
    cores = psutil.cpu_count() or 1
    overall = [
        [
            str(r.replicas),
            str(r.threads),
            f"{r.start_s:.0f}",
            f"{r.images}" + (f" ({r.failed} failed)" if r.failed else ""),
            f"{r.window_s:.1f}",
            f"**{r.per_s:.2f}**",
            f"{r.per_s / base:.2f}x",
            f"{100 * r.busy:.0f} % ({100 * r.own:.0f} % this run)",
        ]
        for r in runs
    ]
    per_stage = []
    for r in runs:
        for stage in STAGES:
            n = r.stages[stage]
            per_stage.append(
                [
                    f"{r.replicas} / {stage}",
                    f"{n.done_s:.1f}",
                    f"{r.images / n.done_s:.2f}" if n.done_s > 0 else "-",
                    f"{100 * r.busy_share(stage):.0f} %",
                    f"{1000 * n.model_s / r.images:.0f}",
                    f"{1000 * (n.batch_s - n.model_s) / r.images:.0f}",
                    f"{1000 * n.cpu_s / r.images:.0f}",
                    f"{100 * n.cpu_s / r.window_s:.0f} %",
                ]
            )
    servers = [
        [label, *(f"{1000 * r.servers_cpu_s[label] / r.images:.0f}" for r in runs)]
        for label in SERVERS.values()
    ]
    note = f" ({args.note})" if args.note else ""
    counts = "/".join(map(str, args.replicas))
    return "\n".join(
        [
            *report_header(f"Scale-out, {counts} per stage{note}", machine),
            "",
            f"Corpus: {len(photos)} distinct photos, {corpus_bytes(photos) / 1e6:.0f} MB "
            f"({corpus_mix(photos)}), PUT at once from 8 threads; each replica count on a "
            f"fresh stack, topics of {args.partitions} partitions, N processes of each of "
            f"ingest, caption and embed; window = first PUT → last text vector stored; "
            f"{cores} cores.",
            "",
            table(
                [
                    "per stage",
                    "torch threads each",
                    "start s",
                    "images",
                    "window s",
                    "images/s",
                    "vs 1",
                    "cores busy (this run's share)",
                ],
                overall,
            ),
            "",
            "Per stage (replicas summed): done at = first PUT → its last row (embed: its last "
            "vector seen); busy = inside "
            "batches over N x window; ms per image of the model, of the rest of the batch, "
            "and of CPU (every replica's process tree):",
            "",
            table(
                [
                    "N / stage",
                    "done at s",
                    "images/s",
                    "busy",
                    "model ms",
                    "rest ms",
                    "CPU ms",
                    "CPU of one core",
                ],
                per_stage,
            ),
            "",
            "Servers, CPU ms per image:",
            "",
            table(["server", *(f"{r.replicas} per stage" for r in runs)], servers),
            "",
            *(verdict(r) for r in runs),
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--images", type=int, default=300, help="photos per replica count")
    parser.add_argument(
        "--replicas",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2, 4],
        help="processes per stage, comma-separated",
    )
    parser.add_argument("--partitions", type=int, default=8, help="per topic (≥ replicas)")
    parser.add_argument("--large-every", type=int, default=15, help="every Nth is 4000x3000")
    parser.add_argument("--png-every", type=int, default=25, help="every Nth is a PNG")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800, help="max seconds per run")
    parser.add_argument(
        "--ready-timeout", type=float, default=600, help="max seconds for the workers to load"
    )
    parser.add_argument("--max-load", type=float, default=1.5, help="quiet: 1-min load avg")
    parser.add_argument("--quiet-timeout", type=float, default=240, help="max wait for quiet")
    parser.add_argument("--note", default="", help="said in the heading, e.g. 'short run'")
    add_output_args(parser)
    args = parser.parse_args(argv)
    if max(args.replicas) > args.partitions:
        parser.error("--partitions must be at least the largest replica count")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    quiet = wait_for_low_load(args.max_load, args.quiet_timeout)
    machine = machine_info({"quiet check": quiet})
    say(f"generating {args.images} photos …")
    photos = make_corpus(args.images, args.large_every, args.png_every, args.seed)
    runs = [measure(n, photos, args) for n in args.replicas]
    publish(report(args, machine, photos, runs), args)


if __name__ == "__main__":
    main()
