"""Re-index benchmark: a new text model's vectors filled side by side, index build
included, and what that does to searches served from the active model meanwhile.

    python -m bench.reindex [--vectors 100000] [--no-record]

On a private embedded Postgres (as glimpse runs it) with glimpse's migrations:

0. setup, untimed: ``--vectors`` media rows and as many vectors of the active model
   ``bench/old`` (synthetic: clustered 384-d unit vectors, COPY'd straight into
   Postgres — no model runs), its partial HNSW index built by ``register_model``;
1. idle: a search loop (``glimpse.search.nearest`` on the active model, one query after
   another, ``--seconds`` long) with nothing else going on;
2. fill: ``bench/new`` registered (``register_model``: its partial HNSW index built
   ``CONCURRENTLY`` while it is still empty) and its ``--vectors`` vectors written through
   ``vectors.save`` in batches of ``--batch`` (as embed workers write a backfill), each
   batch a transaction, the index maintained as they go — with the search loop running;
3. build: the new model's index dropped and built again ``CONCURRENTLY`` over its filled
   rows (``register_model`` again; a model registered after its rows were written, or
   a crashed build) — with the search loop running.

Goal (issue 10): search p99 during the re-index ÷ idle ≤ 2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector import HalfVector

from bench.common.postgres import (
    connect,
    fresh_database,
    private_postgres,
    register_model,
)
from bench.common.quiet import OtherLoad
from bench.common.report import add_output_args, machine_info, publish, report_header, say, table
from glimpse.db import vectors
from glimpse.db.vectors import VectorModel
from glimpse.search import SearchFilters, nearest

GOAL = 2.0
DIM = 384
OLD = VectorModel("bench/old", "text", DIM)
NEW = VectorModel("bench/new", "text", DIM)
Floats = npt.NDArray[np.float32]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=100_000, help="items (vectors per model)")
    parser.add_argument("--batch", type=int, default=64, help="vectors per write, step 2")
    parser.add_argument("--seconds", type=float, default=20.0, help="idle search loop, step 1")
    parser.add_argument("--queries", type=int, default=200, help="distinct query vectors")
    parser.add_argument("--seed", type=int, default=20261130)
    add_output_args(parser)
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    return args


def clustered(n: int, rng: np.random.Generator, centres: Floats) -> Floats:
    """``n`` unit vectors, each a random centre plus noise (text embeddings cluster)."""
    points = centres[rng.integers(len(centres), size=n)] + 0.35 * rng.standard_normal(
        (n, DIM), dtype=np.float32
    )
    unit: Floats = points / np.linalg.norm(points, axis=1, keepdims=True)
    return unit


def item_ids(n: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=i + 1) for i in range(n)]


def load_active_model(url: str, ids: Sequence[uuid.UUID], data: Floats) -> float:
    """Media rows and the active model's vectors (COPY), then its index; seconds."""
    started = time.perf_counter()
    with connect(url) as conn:
        with conn.cursor().copy(
            "COPY media (id, bucket, key, status, kind, mime) FROM STDIN"
        ) as copy:
            for mid in ids:
                copy.write_row((mid, "bench", f"reindex/{mid}.jpg", "accepted", "image",
                                "image/jpeg"))  # fmt: skip
        with conn.cursor().copy(
            "COPY embeddings (media_id, model, kind, source, dim, embedding) FROM STDIN"
        ) as copy:
            for mid, vec in zip(ids, data, strict=True):
                copy.write_row((mid, OLD.model, OLD.kind, "caption", DIM, HalfVector(vec)))
        conn.commit()
        register_model(conn, OLD)  # the first text model: the active one
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("VACUUM (ANALYZE) media")
        admin.execute("VACUUM (ANALYZE) embeddings")
    return time.perf_counter() - started


class SearchLoop:
    """Searches the active model through ``glimpse.search.nearest``, one after another,
    on its own thread and connection; each search's milliseconds."""

    def __init__(self, url: str, queries: Floats) -> None:
        self._url = url
        self._queries = queries
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="search-loop", daemon=True)
        self.ms: list[float] = []
        self.errors = 0
        self.hits_outside: int = 0  # hits that are not the active model's items

    def __enter__(self) -> SearchLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with connect(self._url) as conn:
            i = 0
            while not self._stop.is_set():
                query = self._queries[i % len(self._queries)]
                i += 1
                started = time.perf_counter()
                try:
                    with conn.transaction():
                        hits = nearest(conn, OLD, query, SearchFilters(), limit=10)
                except psycopg.Error:
                    self.errors += 1
                    continue
                self.ms.append((time.perf_counter() - started) * 1000)
                if len(hits) != 10:
                    self.hits_outside += 1


def fill(url: str, ids: Sequence[uuid.UUID], data: Floats, batch: int) -> float:
    """Register the new model (its empty index built CONCURRENTLY) and write its vectors
    through ``vectors.save``, a batch per transaction; seconds."""
    started = time.perf_counter()
    with connect(url) as conn:
        register_model(conn, NEW)
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            vectors.save(conn, chunk, NEW, ["caption"] * len(chunk), data[start : start + batch])
            conn.commit()
    return time.perf_counter() - started


def rebuild(url: str) -> float:
    """The new model's index dropped and built again CONCURRENTLY over its rows; seconds."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        vectors.drop_index(conn, NEW.model, NEW.kind)
    with connect(url) as conn:
        register_model(conn, NEW)
    return time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Phase:
    label: str
    seconds: float
    ms: list[float]
    errors: int
    short: int  # answers with fewer than 10 hits

    def p(self, q: float) -> float:
        ordered = sorted(self.ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def with_searches(label: str, url: str, queries: Floats, work: Callable[[], float]) -> Phase:
    with SearchLoop(url, queries) as loop:
        seconds = work()
    say(f"   {label}: {seconds:.1f}s, {len(loop.ms)} searches, p99 "
        f"{Phase(label, seconds, loop.ms, 0, 0).p(0.99):.1f} ms")  # fmt: skip
    return Phase(label, seconds, loop.ms, loop.errors, loop.hits_outside)


@dataclass(frozen=True, slots=True)
class Result:
    load_s: float
    idle: Phase
    phases: list[Phase]
    other_share: float


def run(args: argparse.Namespace, home: Path) -> Result:
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((64, DIM), dtype=np.float32)
    ids = item_ids(args.vectors)
    old = clustered(args.vectors, rng, centres)
    new = clustered(args.vectors, rng, centres)
    queries = clustered(args.queries, rng, centres)
    with private_postgres(home) as pg:
        url = fresh_database(pg, "reindex")
        say(f"0. loading {args.vectors:,} vectors of the active model and building its index …")
        load_s = load_active_model(url, ids, old)
        say(f"   {load_s:.1f}s")
        with OtherLoad() as others:
            say(f"1. idle search loop, {args.seconds:g}s …")
            idle = with_searches("idle", url, queries, lambda: _sleep(args.seconds))
            say(f"2. fill the new model through its live index, batches of {args.batch} …")
            filled = with_searches(
                "fill (register, then vectors.save)", url, queries,
                lambda: fill(url, ids, new, args.batch),
            )  # fmt: skip
            say("3. its index built again CONCURRENTLY over the filled rows …")
            built = with_searches(
                "index build (CREATE INDEX CONCURRENTLY)", url, queries, lambda: rebuild(url)
            )
    return Result(load_s, idle, [filled, built], others.share)


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def report(args: argparse.Namespace, machine: dict[str, str], result: Result) -> str:
    idle = result.idle
    rows = []
    for phase in [idle, *result.phases]:
        rows.append([
            phase.label,
            f"{phase.seconds:.1f}s",
            f"{len(phase.ms)}",
            f"{phase.p(0.5):.1f} / {phase.p(0.99):.1f} ms",
            "" if phase is idle else f"{phase.p(0.99) / idle.p(0.99):.2f}",
            f"{phase.errors} / {phase.short}",
        ])  # fmt: skip
    worst = max(p.p(0.99) for p in result.phases) / idle.p(0.99)
    out = report_header("Re-index", machine)
    out += [
        f"- **command**: `python -m bench.reindex {' '.join(args.argv)}`",
        f"- **vectors**: {args.vectors:,} per model, synthetic (clustered 384-d, COPY'd "
        f"straight into Postgres for the active model; written through `vectors.save` "
        f"for the new one); setup {result.load_s:.0f}s untimed",
        f"- **other processes** used {result.other_share:.0%} of the CPUs during the run",
        "",
        table(
            [
                "phase",
                "took",
                "searches",
                "search p50 / p99",
                "p99 ÷ idle",
                "errors / short answers",
            ],
            rows,
        ),
        "",
        f"Worst p99 during the re-index ÷ idle: **{worst:.2f}** (goal ≤ {GOAL:g}).",
        "",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="bench-reindex-") as home:
        result = run(args, Path(home))
    publish(report(args, machine, result), args)


if __name__ == "__main__":
    main()
