"""A fixed pseudo-random sample of the library's vectors, per model: what a query's
typical similarity is measured against (glimpse.relevance).

The sample is the first vectors in media-id order (ids are uuid5 hashes, unrelated to
content), read through the primary key (``glimpse.relevance.background`` asks Postgres
for the query's similarity to them). It changes only as items come and go, so the API
keeps a full sample in memory and reads it again after ``max_age_s``: a search then
compares its query with 256 vectors in numpy (microseconds) instead of asking Postgres
each time (3-7 ms at a million vectors, and one more statement competing for the CPU).
A library smaller than the sample is asked every time: its newest items count at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql

from glimpse.db.vectors import VectorModel


def sample_statement(model: VectorModel, select: str) -> sql.Composed:
    """``select`` over the model's sample: ``%(size)s`` embeddings rows ``e`` of accepted
    items in media-id order; ``{cast}`` in ``select`` is the model's halfvec type."""
    # Model and kind as literals, as in glimpse.search.nearest; the primary key
    # (media_id, model, kind) serves the media-id order.
    return sql.SQL(
        "SELECT " + select + " FROM embeddings e JOIN media m ON m.id = e.media_id "
        "WHERE e.model = {model} AND e.kind = {kind} AND m.status = 'accepted' "
        "ORDER BY e.media_id LIMIT %(size)s"
    ).format(
        cast=sql.SQL("halfvec({})").format(sql.Literal(model.dim)),
        model=sql.Literal(model.model),
        kind=sql.Literal(model.kind),
    )


def read_sample(conn: psycopg.Connection[Any], model: VectorModel, size: int) -> np.ndarray:
    """Up to ``size`` of the model's vectors of accepted items, unit rows (size, dim)."""
    rows = conn.execute(
        sample_statement(model, "e.embedding::{cast} AS embedding"),
        {"size": size},
        binary=True,  # 256 x 1280 numbers parsed from text took tens of ms
    ).fetchall()
    if not rows:
        return np.zeros((0, model.dim), dtype=np.float32)
    vectors = np.stack([_values(r["embedding"]) for r in rows]).astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _values(embedding: HalfVector | bytes) -> np.ndarray:
    # a connection without pgvector's types registered returns the binary form as is
    if isinstance(embedding, HalfVector):
        return np.asarray(embedding.to_numpy())
    return np.asarray(HalfVector.from_binary(embedding).to_numpy())


def similarities(sample: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of ``query`` to each (unit) row of ``sample``."""
    q = np.asarray(query, dtype=np.float32)
    return np.asarray(sample @ (q / max(float(np.linalg.norm(q)), 1e-12)), dtype=np.float64)


class LibrarySample:
    """The full ``read_sample`` of each model, kept for ``max_age_s``."""

    def __init__(
        self, size: int, max_age_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.max_age_s = max_age_s
        self.clock = clock
        self._kept: dict[VectorModel, tuple[float, np.ndarray]] = {}
        self._lock = threading.Lock()

    def kept(self, model: VectorModel) -> np.ndarray | None:
        """The model's sample if read within ``max_age_s``, else None (ask Postgres)."""
        with self._lock:
            entry = self._kept.get(model)
        if entry is None or self.clock() - entry[0] > self.max_age_s:
            return None
        return entry[1]

    def keep(self, conn: psycopg.Connection[Any], model: VectorModel) -> None:
        """Read the model's sample and keep it, if it is full (else forget any kept one:
        the library shrank)."""
        sample = read_sample(conn, model, self.size)
        with self._lock:
            if len(sample) == self.size:
                self._kept[model] = (self.clock(), sample)
            else:
                self._kept.pop(model, None)
