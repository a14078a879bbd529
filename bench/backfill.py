"""Backfill benchmark: a backfill's throughput against the live pipeline's, and what a
running backfill does to live uploads.

    python -m bench.backfill [--objects 2000] [--live-every 2] [--no-record]

One run, on a fresh embedded stack, in this order:

1. idle latency: ``--idle`` single uploads, one at a time: upload → searchable (its text
   vector in Postgres) with nothing else going on;
2. live throughput: ``--objects`` photos uploaded from 8 threads under ``live/``; items
   per second from the first PUT until every one is searchable;
3. backfill throughput: their media rows deleted (as if every notification had been
   lost), then ``glimpse backfill --stage ingest --missing --prefix live/``: items per
   second from the command's start until every one is searchable again — the same
   work (decode, thumbnail, caption, embed) through the backfill topics, no live traffic;
4. the same again (rows deleted, backfill) with one live upload every ``--live-every``
   seconds under ``during/``: upload → searchable while the backfill runs, against step 1,
   and the backfill's throughput under that traffic.

Each live upload's time is split by stage from its rows' timestamps (PUT → media row →
caption → text vector), and the CPU seconds of every part are taken over steps 3 and 4:
where a live upload waits during a backfill.

Goals (issue 10): backfill ÷ live throughput ≥ 0.9; live p50 during a backfill ≤ 2x idle.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.common.corpus import Photo, make_corpus
from bench.common.processes import CpuSnapshot, machine_busy_fraction
from bench.common.quiet import OtherLoad
from bench.common.report import add_output_args, machine_info, publish, report_header, say, table
from bench.common.stack import part_pids, private_settings
from glimpse.config import Settings
from glimpse.db.media import media_id
from glimpse.reconcile import ReconcileReport
from glimpse.stack.supervisor import EmbeddedStack, service_env
from glimpse.storage import ObjectStore

THROUGHPUT_GOAL = 0.9
LATENCY_GOAL = 2.0
STAGES = ("ingest", "caption", "embed")
LIVE_TIMEOUT_S = 300.0  # a live upload not searchable by then is counted as such
# Thousands of ids per query: polled every 0.1 s, the harness itself (its process and
# Postgres) took about a tenth of the two cores from the pipeline it measures; 1 s is
# plenty for runs of minutes.
BULK_POLL_S = 1.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=2000, help="photos in steps 2-4")
    parser.add_argument("--idle", type=int, default=10, help="single uploads in step 1")
    parser.add_argument("--live-every", type=float, default=2.0, help="seconds, step 4")
    parser.add_argument("--seed", type=int, default=20261130)
    add_output_args(parser)
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    return args


def connect(settings: Settings) -> psycopg.Connection[Any]:
    assert settings.database.url
    return psycopg.connect(settings.database.url, row_factory=dict_row, autocommit=True)


def searchable(conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = conn.execute(
        "SELECT media_id FROM embeddings WHERE kind = 'text' AND media_id = ANY(%(ids)s)",
        {"ids": list(ids)},
    ).fetchall()
    return {r["media_id"] for r in rows}


def wait_searchable(
    settings: Settings, keys: Sequence[str], timeout_s: float, poll_s: float = 0.1
) -> float:
    """Seconds until every key's text vector is stored (polled; one query for all)."""
    started = time.monotonic()
    pending = {media_id(settings.s3.bucket, k) for k in keys}
    with connect(settings) as conn:
        while pending:
            pending -= searchable(conn, list(pending))
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"{len(pending)} of {len(keys)} not searchable in time")
            time.sleep(poll_s)
    return time.monotonic() - started


@dataclass(frozen=True, slots=True)
class Upload:
    """One live upload: when its PUT returned (wall clock, as Postgres' ``now()``) and
    the seconds until it was searchable."""

    key: str
    put_at: float
    seconds: float


def upload_and_time(settings: Settings, store: ObjectStore, photo: Photo) -> Upload:
    """One upload → searchable, in seconds (from the PUT returning)."""
    store.put(photo.key, photo.data, photo.mime)
    put_at = time.time()
    return Upload(
        photo.key, put_at, wait_searchable(settings, [photo.key], LIVE_TIMEOUT_S, poll_s=0.05)
    )


def upload_all(store: ObjectStore, photos: Sequence[Photo]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: store.put(p.key, p.data, p.mime), photos))


def stage_split(settings: Settings, uploads: Sequence[Upload]) -> dict[str, list[float]]:
    """Per stage, each upload's seconds in it: PUT → media row (notification + ingest),
    → caption, → text vector (each row's ``created_at``/``updated_at`` is its
    transaction's start, close enough to when the stage wrote it)."""
    put_at = {media_id(settings.s3.bucket, u.key): u.put_at for u in uploads}
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT m.id, extract(epoch FROM m.updated_at) AS ingested,"
            " extract(epoch FROM min(c.created_at)) AS captioned,"
            " extract(epoch FROM min(e.created_at)) AS embedded"
            " FROM media m JOIN captions c ON c.media_id = m.id"
            " JOIN embeddings e ON e.media_id = m.id AND e.kind = 'text'"
            " WHERE m.id = ANY(%(ids)s) GROUP BY m.id, m.updated_at",
            {"ids": list(put_at)},
        ).fetchall()
    split: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for r in rows:
        marks = [put_at[r["id"]], float(r["ingested"]), float(r["captioned"]), float(r["embedded"])]
        for stage, (start, end) in zip(STAGES, itertools.pairwise(marks), strict=True):
            split[stage].append(max(0.0, end - start))
    return split


@dataclass
class LiveTrickle:
    """One upload every ``every_s`` on its own thread, each timed to searchable."""

    settings: Settings
    photos: list[Photo]
    every_s: float
    uploads: list[Upload] = field(default_factory=list)
    timed_out: int = 0  # uploads not searchable within LIVE_TIMEOUT_S (not in ``uploads``)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="live-trickle", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=600)

    def _run(self) -> None:
        store = ObjectStore(self.settings.s3)
        for photo in self.photos:
            if self._stop.is_set():
                return
            started = time.monotonic()
            try:
                self.uploads.append(upload_and_time(self.settings, store, photo))
            except TimeoutError:
                self.timed_out += 1  # said in the report; the next upload still goes
            self._stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))


@dataclass(frozen=True, slots=True)
class Backfill:
    """One backfill of the ``live/`` photos: its seconds and each part's CPU seconds."""

    seconds: float
    cpu_s: dict[str, float]
    busy: float  # the machine's busy fraction over it (every process)


def backfill(
    settings: Settings, stack: EmbeddedStack, keys: Sequence[str], trickle: LiveTrickle | None
) -> Backfill:
    """Delete the rows of ``keys`` (as if every upload notification had been lost),
    then ``glimpse backfill --stage ingest --missing`` until all are searchable again."""
    with connect(settings) as conn:
        conn.execute(
            "DELETE FROM media WHERE id = ANY(%(ids)s)",
            {"ids": [media_id(settings.s3.bucket, k) for k in keys]},
        )
    env = {**os.environ, **service_env(settings)}
    pids = part_pids(stack)
    before = CpuSnapshot.take(pids)
    started = time.monotonic()
    if trickle is not None:
        trickle.start()
    command = [sys.executable, "-m", "glimpse.cli", "backfill", "--stage", "ingest",
               "--missing", "--prefix", "live/", "--no-wait"]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True)
    wait_searchable(settings, keys, timeout_s=7200, poll_s=BULK_POLL_S)
    seconds = time.monotonic() - started
    after = CpuSnapshot.take(pids)
    if trickle is not None:
        trickle.stop()
    cpu = {k: after.cpu_s[k] - before.cpu_s.get(k, 0.0) for k in after.cpu_s}
    return Backfill(seconds, cpu, machine_busy_fraction(before.system, after.system))


@dataclass(frozen=True, slots=True)
class Result:
    idle: list[Upload]
    idle_split: dict[str, list[float]]
    live_s: float
    alone: Backfill
    with_live: Backfill
    during: list[Upload]
    during_timed_out: int
    during_split: dict[str, list[float]]
    objects: int
    other_share: float  # other processes' share of the CPUs over the run
    reconciles: list[ReconcileReport]  # the stack's passes during steps 3-4
    repairs: list[dict[str, int]]  # the stack's stage-repair passes then

    @property
    def ratio(self) -> float:
        return self.live_s / self.alone.seconds  # rates: (n / backfill_s) / (n / live_s)

    @property
    def ratio_with_live(self) -> float:
        return self.live_s / self.with_live.seconds

    @property
    def latency_factor(self) -> float:
        return statistics.median(u.seconds for u in self.during) / statistics.median(
            u.seconds for u in self.idle
        )


def run(settings: Settings, stack: EmbeddedStack, args: argparse.Namespace) -> Result:
    store = ObjectStore(settings.s3)
    photos = [
        Photo(f"live/{p.key}", p.data, p.mime) for p in make_corpus(args.objects, 0, 0, args.seed)
    ]
    # enough live uploads for step 4 (a backfill runs at a few items a second here)
    extra = make_corpus(args.idle + 100 + args.objects // 4, 0, 0, args.seed + 1)
    idle_photos = [Photo(f"idle/{p.key}", p.data, p.mime) for p in extra[: args.idle]]
    during_photos = [Photo(f"during/{p.key}", p.data, p.mime) for p in extra[args.idle :]]

    say(f"1. idle latency over {args.idle} single uploads …")
    idle = [upload_and_time(settings, store, p) for p in idle_photos]
    say(f"   p50 {statistics.median(u.seconds for u in idle):.2f}s")

    say(f"2. live: {args.objects} photos from 8 threads …")
    started = time.monotonic()
    upload_all(store, photos)
    keys = [p.key for p in photos]
    wait_searchable(settings, keys, timeout_s=7200, poll_s=BULK_POLL_S)
    live_s = time.monotonic() - started
    say(f"   {args.objects / live_s:.1f} items/s")

    passes_before = len(stack.reconcile_reports), len(stack.repair_reports)
    with OtherLoad() as others:
        say("3. backfill --stage ingest --missing --prefix live/, no live traffic …")
        alone = backfill(settings, stack, keys, None)
        say(f"   {args.objects / alone.seconds:.1f} items/s")
        say(f"4. the same with one live upload every {args.live_every}s …")
        trickle = LiveTrickle(settings, during_photos, args.live_every)
        with_live = backfill(settings, stack, keys, trickle)
        say(f"   {args.objects / with_live.seconds:.1f} items/s; {len(trickle.uploads)} live")
    return Result(
        idle=idle,
        idle_split=stage_split(settings, idle),
        live_s=live_s,
        alone=alone,
        with_live=with_live,
        during=trickle.uploads,
        during_timed_out=trickle.timed_out,
        during_split=stage_split(settings, trickle.uploads),
        objects=args.objects,
        other_share=others.share,
        reconciles=stack.reconcile_reports[passes_before[0] :],
        repairs=stack.repair_reports[passes_before[1] :],
    )


def _p(values: Sequence[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.2f}s" if ordered else "-"


def _passes(reports: Sequence[ReconcileReport]) -> str:
    if not reports:
        return "no pass"
    sent = sum(r.created for r in reports)
    left = sum(r.left_to_backfill for r in reports)
    return f"{len(reports)} passes sent {sent} created events, left {left} to the backfill job"


def _repairs(passes: Sequence[dict[str, int]]) -> str:
    if not passes:
        return "no pass"
    stages = dict.fromkeys(stage for p in passes for stage in p)  # in order, once each
    announced = {stage: sum(p.get(stage, 0) for p in passes) for stage in stages}
    said = ", ".join(f"{stage} {n}" for stage, n in announced.items())
    return f"{len(passes)} passes announced again: {said}"


def report(args: argparse.Namespace, machine: dict[str, str], result: Result) -> str:
    n = result.objects
    idle = [u.seconds for u in result.idle]
    during = [u.seconds for u in result.during]
    out = report_header("Backfill", machine)
    out += [
        f"- **command**: `python -m bench.backfill {' '.join(args.argv)}`",
        f"- **other processes** used {result.other_share:.0%} of the CPUs during steps 3-4",
        f"- **the stack's reconcile** during steps 3-4: {_passes(result.reconciles)}",
        f"- **its stage repair** then: {_repairs(result.repairs)}",
        "",
        table(
            ["measure", "value", "goal"],
            [
                ["live pipeline (8 upload threads)", f"{n / result.live_s:.1f} items/s", ""],
                [
                    "backfill --stage ingest --missing, alone",
                    f"{n / result.alone.seconds:.1f} items/s",
                    "",
                ],
                ["backfill ÷ live throughput", f"{result.ratio:.2f}", f"≥ {THROUGHPUT_GOAL}"],
                [
                    f"backfill with a live upload every {args.live_every:g}s",
                    f"{n / result.with_live.seconds:.1f} items/s "
                    f"({result.ratio_with_live:.2f} of live)",
                    "",
                ],
                [
                    f"idle upload → searchable p50 / p90 ({len(idle)})",
                    f"{_p(idle, 0.5)} / {_p(idle, 0.9)}",
                    "",
                ],
                [
                    f"during the backfill p50 / p90 ({len(during)})",
                    f"{_p(during, 0.5)} / {_p(during, 0.9)}",
                    "",
                ],
                [
                    f"live uploads not searchable within {LIVE_TIMEOUT_S:.0f}s (not in p50)",
                    str(result.during_timed_out),
                    "0",
                ],
                ["during ÷ idle p50", f"{result.latency_factor:.2f}", f"≤ {LATENCY_GOAL}"],
            ],
        ),
        "",
        "Where a live upload's time goes, p50 per stage (PUT → media row → caption → vector):",
        "",
        table(
            ["", *STAGES],
            [
                ["idle", *(_p(result.idle_split[s], 0.5) for s in STAGES)],
                ["during the backfill", *(_p(result.during_split[s], 0.5) for s in STAGES)],
            ],
        ),
        "",
        "CPU seconds per part (machine busy):",
        "",
        table(
            ["part", "backfill alone", "with live uploads"],
            [
                [name, f"{result.alone.cpu_s[name]:.0f}", f"{result.with_live.cpu_s[name]:.0f}"]
                for name in sorted(result.alone.cpu_s, key=lambda k: -result.alone.cpu_s[k])
                if name in result.with_live.cpu_s
            ]
            + [["(machine busy)", f"{result.alone.busy:.0%}", f"{result.with_live.busy:.0%}"]],
        ),
        "",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    machine = machine_info(with_torch=True)
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as home:
        stack = EmbeddedStack(private_settings(Path(home) / "home"))
        try:
            settings = stack.start()
            stack.wait_all_ready()
            result = run(settings, stack, args)
        finally:
            stack.stop()
    publish(report(args, machine, result), args)


if __name__ == "__main__":
    main()
