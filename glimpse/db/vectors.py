"""SQL for ``embeddings`` and ``vector_models``: one table, one partial HNSW index per model
(its dimension and index here; the registry row, active or not, in ``stage_models``)."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql

from glimpse.db import stage_models

log = logging.getLogger(__name__)

VectorKind = Literal["text", "visual", "joint"]

# pgvector's default 64 reached recall@10 0.945 at 1M vectors even at ef_search 800;
# 128 reaches 0.979 at ef_search 200 for twice the build time (bench/RESULTS.md).
EF_CONSTRUCTION = 128


@dataclass(frozen=True, slots=True)
class VectorModel:
    model: str
    kind: VectorKind
    dim: int


def index_name(model: str, kind: VectorKind) -> str:
    # Postgres names are at most 63 bytes and model ids are free text: hash them.
    return f"embeddings_hnsw_{kind}_{hashlib.sha1(model.encode()).hexdigest()[:12]}"


# Index builds on the embeddings table take turns under this advisory lock (one
# constant for every glimpse process): two concurrent CREATE INDEX CONCURRENTLY on one
# table wait on each other's snapshots, and a builder must not take another's index in
# progress (INVALID until done) for a crashed leftover and drop it.
_INDEX_LOCK = 0x6C1B5F
_LOCK_POLL_S = 0.2


def register_model(
    conn: psycopg.Connection[Any],
    vm: VectorModel,
    revision: str = "",
    spec: dict[str, Any] | None = None,
) -> None:
    """Build the model's partial HNSW index (cosine, on a cast to its dimension) with
    CREATE INDEX CONCURRENTLY, so live writes of other models never wait for it; then
    register it (``stage_models``, role = kind: the first of a kind becomes active, and
    it is stamped as the model the workers run now). An INVALID index a crashed build
    left is dropped and built again. Idempotent; ``conn`` must be in autocommit mode."""
    if not conn.autocommit:
        raise ValueError("register_model needs an autocommit connection (CONCURRENTLY)")
    _build_index(conn, vm)
    with conn.transaction():
        stage_models.register(conn, vm.kind, vm.model, revision, spec)
        conn.execute(
            """
            INSERT INTO vector_models (model, kind, dim, index_name)
            VALUES (%(model)s, %(kind)s, %(dim)s, %(index)s)
            ON CONFLICT (model, kind) DO NOTHING
            """,
            {"model": vm.model, "kind": vm.kind, "dim": vm.dim,
             "index": index_name(vm.model, vm.kind)},
        )  # fmt: skip


def _build_index(conn: psycopg.Connection[Any], vm: VectorModel) -> None:
    name = index_name(vm.model, vm.kind)
    if index_state(conn, name) == "valid":
        return  # the usual restart: nothing to wait for
    # Polled, never waited for inside a statement: a session blocked on the lock would
    # hold a snapshot the builder's CONCURRENTLY waits for.
    while not _try_lock(conn):
        time.sleep(_LOCK_POLL_S)
    try:
        state = index_state(conn, name)
        if state == "invalid":  # a build that crashed (no builder holds the lock)
            log.warning("dropping index %s left invalid by a crashed build", name)
            drop_index(conn, vm.model, vm.kind)
        if state != "valid":
            conn.execute(
                sql.SQL(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON embeddings USING hnsw "
                    "((embedding::halfvec({dim})) halfvec_cosine_ops) "
                    "WITH (m = 16, ef_construction = {ef_construction}) "
                    "WHERE model = {model} AND kind = {kind}"
                ).format(
                    name=sql.Identifier(name),
                    dim=sql.Literal(vm.dim),
                    ef_construction=sql.Literal(EF_CONSTRUCTION),
                    model=sql.Literal(vm.model),
                    kind=sql.Literal(vm.kind),
                )
            )
    finally:
        conn.execute("SELECT pg_advisory_unlock(%(id)s)", {"id": _INDEX_LOCK})


def _try_lock(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%(id)s) AS ok", {"id": _INDEX_LOCK}).fetchone()
    return bool(row and row["ok"])


IndexState = Literal["valid", "invalid", "missing"]


def index_state(conn: psycopg.Connection[Any], name: str) -> IndexState:
    row = conn.execute(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = %(name)s AND c.relnamespace = current_schema()::regnamespace",
        {"name": name},
    ).fetchone()
    if row is None:
        return "missing"
    return "valid" if row["indisvalid"] else "invalid"


def drop_index(conn: psycopg.Connection[Any], model: str, kind: VectorKind) -> None:
    """Drop the model's index without blocking queries or writes (autocommit ``conn``)."""
    conn.execute(
        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
            sql.Identifier(index_name(model, kind))
        )
    )


def active_model(conn: psycopg.Connection[Any], kind: VectorKind) -> VectorModel | None:
    """The model search serves for ``kind``."""
    row = conn.execute(
        "SELECT v.model, v.kind, v.dim FROM vector_models v JOIN stage_models s "
        "ON s.role = v.kind AND s.model = v.model WHERE v.kind = %(kind)s AND s.active",
        {"kind": kind},
    ).fetchone()
    return VectorModel(row["model"], row["kind"], row["dim"]) if row else None


def model_of(conn: psycopg.Connection[Any], model: str, kind: VectorKind) -> VectorModel | None:
    """A registered vector model by id."""
    row = conn.execute(
        "SELECT model, kind, dim FROM vector_models WHERE model = %(model)s AND kind = %(kind)s",
        {"model": model, "kind": kind},
    ).fetchone()
    return VectorModel(row["model"], row["kind"], row["dim"]) if row else None


def save(
    conn: psycopg.Connection[Any],
    media_ids: Sequence[uuid.UUID],
    vm: VectorModel,
    sources: Sequence[str],
    vectors: np.ndarray,
    source_models: Sequence[str | None] | None = None,
) -> None:
    """Upsert one vector per media id (a re-delivery overwrites with the same values).
    ``source_models``: per vector, the model that wrote the text it was made from."""
    models = source_models if source_models is not None else [None] * len(media_ids)
    conn.cursor().executemany(
        """
        INSERT INTO embeddings (media_id, model, kind, source, dim, embedding, source_model)
        VALUES (%(media_id)s, %(model)s, %(kind)s, %(source)s, %(dim)s, %(embedding)s,
                %(source_model)s)
        ON CONFLICT (media_id, model, kind) DO UPDATE
        SET source = EXCLUDED.source, dim = EXCLUDED.dim, embedding = EXCLUDED.embedding,
            source_model = EXCLUDED.source_model, created_at = now()
        """,
        [
            {
                "media_id": mid,
                "model": vm.model,
                "kind": vm.kind,
                "source": source,
                "dim": vm.dim,
                "embedding": HalfVector(vec),
                "source_model": source_model,
            }
            for mid, source, vec, source_model in zip(
                media_ids, sources, vectors, models, strict=True
            )
        ],
    )


def fresh_text_vectors(
    conn: psycopg.Connection[Any], media_ids: Sequence[uuid.UUID], vm: VectorModel
) -> dict[uuid.UUID, str | None]:
    """Media whose text vector of ``vm`` is newer than every caption and transcript of
    theirs, with the model whose text it was made from (None: not recorded): a
    re-delivered text of that model needs no model call."""
    rows = conn.execute(
        """
        SELECT e.media_id, e.source_model FROM embeddings e
        WHERE e.media_id = ANY(%(ids)s) AND e.model = %(model)s AND e.kind = %(kind)s
          AND e.created_at >= coalesce(
                (SELECT max(c.created_at) FROM captions c WHERE c.media_id = e.media_id),
                '-infinity')
          AND e.created_at >= coalesce(
                (SELECT max(t.created_at) FROM transcripts t WHERE t.media_id = e.media_id),
                '-infinity')
        """,
        {"ids": list(media_ids), "model": vm.model, "kind": vm.kind},
    ).fetchall()
    return {r["media_id"]: r["source_model"] for r in rows}


def vector_of(
    conn: psycopg.Connection[Any], media_id: uuid.UUID, vm: VectorModel
) -> np.ndarray | None:
    row = conn.execute(
        "SELECT embedding FROM embeddings WHERE media_id = %(id)s AND model = %(model)s "
        "AND kind = %(kind)s",
        {"id": media_id, "model": vm.model, "kind": vm.kind},
    ).fetchone()
    return np.asarray(row["embedding"].to_numpy(), dtype=np.float32) if row else None


def with_vector(
    conn: psycopg.Connection[Any], media_ids: Sequence[uuid.UUID], vm: VectorModel
) -> set[uuid.UUID]:
    """Which of ``media_ids`` already have a vector of ``vm``."""
    rows = conn.execute(
        "SELECT media_id FROM embeddings "
        "WHERE media_id = ANY(%(ids)s) AND model = %(model)s AND kind = %(kind)s",
        {"ids": list(media_ids), "model": vm.model, "kind": vm.kind},
    ).fetchall()
    return {r["media_id"] for r in rows}
