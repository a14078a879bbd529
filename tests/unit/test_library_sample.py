"""The library's sample vectors: read once, kept while fresh, compared in numpy exactly
as Postgres compares them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row

from glimpse.db import media, vectors
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.library_sample import LibrarySample, read_sample, similarities

DIM = 8


MODEL = vectors.VectorModel("test/sample", "text", DIM)
EMPTY = vectors.VectorModel("test/sample-empty", "text", DIM)


@pytest.fixture
def conn(postgres: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(postgres, autocommit=True, row_factory=dict_row) as admin:
        for model in (MODEL, EMPTY):
            vectors.register_model(admin, model)
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        register_vector(conn)
        yield conn
        conn.rollback()  # nothing a test wrote stays: each test sees only its own rows


def add(conn: psycopg.Connection[Any], model: vectors.VectorModel, count: int) -> np.ndarray:
    """``count`` accepted items with random (not unit) vectors of ``model``."""
    rng = np.random.default_rng(count)
    vecs = rng.normal(size=(count, DIM)).astype(np.float32) * 3
    for vec in vecs:
        key = f"sample-{uuid.uuid4()}"
        row = MediaRow(bucket="sampletest", key=key, status=MediaStatus.ACCEPTED,
                       kind="image", mime="image/jpeg", sha256=key)  # fmt: skip
        media.save(conn, row)
        vectors.save(conn, [row.id], model, ["caption"], vec[None, :])
    return vecs


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_similarities_in_numpy_are_postgres_cosine_similarities(
    conn: psycopg.Connection[Any],
) -> None:
    model = MODEL
    add(conn, model, 20)
    query = np.random.default_rng(1).normal(size=DIM).astype(np.float32)

    mine = similarities(read_sample(conn, model, 20), query)
    theirs = [
        float(r["s"])
        for r in conn.execute(
            "SELECT 1 - (embedding::halfvec(8) <=> %(q)s::halfvec(8)) AS s FROM embeddings "
            "WHERE model = %(m)s ORDER BY media_id",
            {"q": HalfVector(query), "m": model.model},
        )
    ]
    assert mine == pytest.approx(theirs, abs=2e-3)  # halfvec rounding


def test_a_full_sample_is_kept_until_it_is_old_and_then_read_again(
    conn: psycopg.Connection[Any],
) -> None:
    model, clock = MODEL, Clock()
    add(conn, model, 12)
    sample = LibrarySample(size=10, max_age_s=60, clock=clock)

    assert sample.kept(model) is None  # never read
    sample.keep(conn, model)
    clock.now = 59
    kept = sample.kept(model)
    assert kept is not None and kept.shape == (10, DIM)
    assert np.allclose(np.linalg.norm(kept, axis=1), 1.0, atol=1e-3)
    assert np.array_equal(kept, read_sample(conn, model, 10))
    clock.now = 61
    assert sample.kept(model) is None


def test_a_sample_smaller_than_its_size_is_not_kept(
    conn: psycopg.Connection[Any],
) -> None:
    model = MODEL
    add(conn, model, 5)
    sample = LibrarySample(size=10, max_age_s=60)

    sample.keep(conn, model)
    assert sample.kept(model) is None  # a library still filling: its next items count
    assert len(read_sample(conn, EMPTY, 10)) == 0  # a model with no vectors
