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
   work (decode, thumbnail, caption, embed) through the backfill topics;
4. during step 3, one live upload every ``--live-every`` seconds under ``during/``:
   upload → searchable while the backfill runs, against step 1.

Goals (issue 10): backfill ÷ live throughput ≥ 0.9; live p50 during a backfill ≤ 2x idle.
"""

from __future__ import annotations

import argparse
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
from bench.common.report import add_output_args, machine_info, publish, report_header, say, table
from bench.common.stack import private_settings
from glimpse.config import Settings
from glimpse.db.media import media_id
from glimpse.stack.supervisor import EmbeddedStack, service_env
from glimpse.storage import ObjectStore

THROUGHPUT_GOAL = 0.9
LATENCY_GOAL = 2.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=2000, help="photos in steps 2 and 3")
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


def upload_and_time(settings: Settings, store: ObjectStore, photo: Photo) -> float:
    """One upload → searchable, in seconds (from the PUT returning)."""
    store.put(photo.key, photo.data, photo.mime)
    return wait_searchable(settings, [photo.key], timeout_s=300, poll_s=0.05)


def upload_all(store: ObjectStore, photos: Sequence[Photo]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: store.put(p.key, p.data, p.mime), photos))


@dataclass
class LiveTrickle:
    """One upload every ``every_s`` on its own thread, each timed to searchable."""

    settings: Settings
    photos: list[Photo]
    every_s: float
    latencies: list[float] = field(default_factory=list)
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
            self.latencies.append(upload_and_time(self.settings, store, photo))
            self._stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))


@dataclass(frozen=True, slots=True)
class Result:
    idle: list[float]
    live_s: float
    backfill_s: float
    during: list[float]
    objects: int

    @property
    def ratio(self) -> float:
        return self.live_s / self.backfill_s  # rates: (n / backfill_s) / (n / live_s)

    @property
    def latency_factor(self) -> float:
        return statistics.median(self.during) / statistics.median(self.idle)


def run(settings: Settings, args: argparse.Namespace) -> Result:
    store = ObjectStore(settings.s3)
    photos = [
        Photo(f"live/{p.key}", p.data, p.mime) for p in make_corpus(args.objects, 0, 0, args.seed)
    ]
    extra = make_corpus(args.idle + 400, 0, 0, args.seed + 1)
    idle_photos = [Photo(f"idle/{p.key}", p.data, p.mime) for p in extra[: args.idle]]
    during_photos = [Photo(f"during/{p.key}", p.data, p.mime) for p in extra[args.idle :]]

    say(f"1. idle latency over {args.idle} single uploads …")
    idle = [upload_and_time(settings, store, p) for p in idle_photos]
    say(f"   p50 {statistics.median(idle):.2f}s")

    say(f"2. live: {args.objects} photos from 8 threads …")
    started = time.monotonic()
    upload_all(store, photos)
    keys = [p.key for p in photos]
    wait_searchable(settings, keys, timeout_s=7200)
    live_s = time.monotonic() - started
    say(f"   {args.objects / live_s:.1f} items/s")

    with connect(settings) as conn:  # as if every upload notification had been lost
        conn.execute(
            "DELETE FROM media WHERE id = ANY(%(ids)s)",
            {"ids": [media_id(settings.s3.bucket, k) for k in keys]},
        )
    say("3. backfill --stage ingest --missing --prefix live/, with live uploads …")
    trickle = LiveTrickle(settings, during_photos, args.live_every)
    env = {**os.environ, **service_env(settings)}
    started = time.monotonic()
    trickle.start()
    command = [sys.executable, "-m", "glimpse.cli", "backfill", "--stage", "ingest",
               "--missing", "--prefix", "live/", "--no-wait"]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True)
    wait_searchable(settings, keys, timeout_s=7200)
    backfill_s = time.monotonic() - started
    trickle.stop()
    say(f"   {args.objects / backfill_s:.1f} items/s; {len(trickle.latencies)} live uploads")
    return Result(idle, live_s, backfill_s, trickle.latencies, args.objects)


def report(args: argparse.Namespace, machine: dict[str, str], result: Result) -> str:
    def p(values: list[float], q: float) -> str:
        ordered = sorted(values)
        return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.2f}s"

    n = result.objects
    out = report_header("Backfill", machine)
    out += [
        f"- **command**: `python -m bench.backfill {' '.join(args.argv)}`",
        "",
        table(
            ["measure", "value", "goal"],
            [
                ["live pipeline (8 upload threads)", f"{n / result.live_s:.1f} items/s", ""],
                ["backfill --stage ingest --missing", f"{n / result.backfill_s:.1f} items/s", ""],
                ["backfill ÷ live throughput", f"{result.ratio:.2f}", f"≥ {THROUGHPUT_GOAL}"],
                [
                    f"idle upload → searchable p50 / p90 ({len(result.idle)})",
                    f"{p(result.idle, 0.5)} / {p(result.idle, 0.9)}",
                    "",
                ],
                [
                    f"during the backfill p50 / p90 ({len(result.during)})",
                    f"{p(result.during, 0.5)} / {p(result.during, 0.9)}",
                    "",
                ],
                ["during ÷ idle p50", f"{result.latency_factor:.2f}", f"≤ {LATENCY_GOAL}"],
            ],
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
            result = run(settings, args)
        finally:
            stack.stop()
    publish(report(args, machine, result), args)


if __name__ == "__main__":
    main()
