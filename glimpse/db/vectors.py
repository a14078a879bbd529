"""SQL for ``embeddings`` and ``vector_models``: one table, one partial HNSW index per model."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql

VectorKind = Literal["text", "visual"]

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


def register_model(conn: psycopg.Connection[Any], vm: VectorModel) -> None:
    """Create the model's partial HNSW index (cosine, on a cast to its dimension) and its
    registry row; the first model of a kind becomes the active one. Idempotent; stamps
    the model as the one the workers run now (``stage_models.current``)."""
    name = index_name(vm.model, vm.kind)
    conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON embeddings USING hnsw "
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
    conn.execute(
        """
        INSERT INTO vector_models (model, kind, dim, index_name, active)
        VALUES (%(model)s, %(kind)s, %(dim)s, %(index)s,
                NOT EXISTS (SELECT 1 FROM vector_models WHERE kind = %(kind)s AND active))
        ON CONFLICT (model, kind) DO UPDATE SET registered_at = now()
        """,
        {"model": vm.model, "kind": vm.kind, "dim": vm.dim, "index": name},
    )


def active_model(conn: psycopg.Connection[Any], kind: VectorKind) -> VectorModel | None:
    row = conn.execute(
        "SELECT model, kind, dim FROM vector_models WHERE kind = %(kind)s AND active",
        {"kind": kind},
    ).fetchone()
    return VectorModel(row["model"], row["kind"], row["dim"]) if row else None


def save(
    conn: psycopg.Connection[Any],
    media_ids: Sequence[uuid.UUID],
    vm: VectorModel,
    sources: Sequence[str],
    vectors: np.ndarray,
) -> None:
    """Upsert one vector per media id (a re-delivery overwrites with the same values)."""
    conn.cursor().executemany(
        """
        INSERT INTO embeddings (media_id, model, kind, source, dim, embedding)
        VALUES (%(media_id)s, %(model)s, %(kind)s, %(source)s, %(dim)s, %(embedding)s)
        ON CONFLICT (media_id, model, kind) DO UPDATE
        SET source = EXCLUDED.source, dim = EXCLUDED.dim, embedding = EXCLUDED.embedding,
            created_at = now()
        """,
        [
            {
                "media_id": mid,
                "model": vm.model,
                "kind": vm.kind,
                "source": source,
                "dim": vm.dim,
                "embedding": HalfVector(vec),
            }
            for mid, source, vec in zip(media_ids, sources, vectors, strict=True)
        ],
    )


def fresh_text_vectors(
    conn: psycopg.Connection[Any], media_ids: Sequence[uuid.UUID], vm: VectorModel
) -> set[uuid.UUID]:
    """Media whose text vector of ``vm`` is newer than every caption and transcript of
    theirs: a re-delivered text for them needs no model call."""
    rows = conn.execute(
        """
        SELECT e.media_id FROM embeddings e
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
    return {r["media_id"] for r in rows}


def vector_of(
    conn: psycopg.Connection[Any], media_id: uuid.UUID, vm: VectorModel
) -> np.ndarray | None:
    row = conn.execute(
        "SELECT embedding FROM embeddings WHERE media_id = %(id)s AND model = %(model)s "
        "AND kind = %(kind)s",
        {"id": media_id, "model": vm.model, "kind": vm.kind},
    ).fetchone()
    return np.asarray(row["embedding"].to_numpy(), dtype=np.float32) if row else None


def with_text_vector(
    conn: psycopg.Connection[Any], media_ids: Sequence[uuid.UUID], vm: VectorModel
) -> set[uuid.UUID]:
    """Which of ``media_ids`` already have a vector of ``vm``."""
    rows = conn.execute(
        "SELECT media_id FROM embeddings "
        "WHERE media_id = ANY(%(ids)s) AND model = %(model)s AND kind = %(kind)s",
        {"ids": list(media_ids), "model": vm.model, "kind": vm.kind},
    ).fetchall()
    return {r["media_id"] for r in rows}
