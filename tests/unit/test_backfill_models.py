"""Which model's work backfill and stage repair look for (glimpse/backfill.py), on the
session's real Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row

from glimpse.backfill import MediaWork, stage_work
from glimpse.config import KafkaSettings, S3Settings
from glimpse.db import captions, media, stage_models, vectors
from glimpse.db.backlog import Scope
from glimpse.db.captions import CaptionRow
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.messages import TextReady
from glimpse.storage import ObjectStore

CAPTIONER = "labels/backfill-test-captioner"
SERVED = vectors.VectorModel("text/backfill-served", "text", 4)
NEW = vectors.VectorModel("text/backfill-side-by-side", "text", 4)


@pytest.fixture
def conn(postgres: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres, row_factory=dict_row, autocommit=True) as c:
        register_vector(c)
        yield c


@pytest.fixture
def served_text_model(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """SERVED is the active text model, NEW the one a worker started with last (a
    side-by-side worker filling a new model); the session's models as they were after."""
    before = {role: stage_models.active(conn, role) for role in ("text", "captioner")}
    vectors.register_model(conn, SERVED)
    stage_models.register(conn, "captioner", CAPTIONER, "r1")
    vectors.register_model(conn, NEW)
    with conn.transaction():
        stage_models.set_active(conn, "text", SERVED.model)
    yield
    with conn.transaction():
        for role, model in before.items():
            if model is not None:
                stage_models.set_active(conn, role, model.model)  # type: ignore[arg-type]


def captioned(conn: psycopg.Connection[Any], bucket: str, key: str) -> uuid.UUID:
    row = MediaRow(bucket=bucket, key=key, status=MediaStatus.ACCEPTED, etag="e", kind="image",
                   mime="image/png", size_bytes=10, sha256=uuid.uuid4().hex)  # fmt: skip
    media.save(conn, row)
    captions.save(conn, [CaptionRow(row.id, CAPTIONER, "r1", f"a photo of {key}", [])])
    return row.id


def embedded(conn: psycopg.Connection[Any], mid: uuid.UUID, vm: vectors.VectorModel) -> None:
    vectors.save(conn, [mid], vm, ["caption"], np.ones((1, vm.dim), dtype=np.float32))


def found(conn: psycopg.Connection[Any], bucket: str, **kw: Any) -> set[uuid.UUID]:
    store = ObjectStore(S3Settings(endpoint="http://127.0.0.1:9", bucket=bucket))
    scope = Scope(bucket, cutoff=datetime.now(UTC) + timedelta(seconds=5))
    work = stage_work(conn, "embed", "missing", scope, KafkaSettings(), store, **kw)
    assert isinstance(work, MediaWork)
    messages, _ = work.page(conn, None, 100)
    return {TextReady.model_validate_json(m.value).media_id for m in messages}


@pytest.mark.usefixtures("served_text_model")
def test_repair_wants_vectors_of_the_served_text_model_not_the_last_started(
    conn: psycopg.Connection[Any],
) -> None:
    bucket = f"backfill-{uuid.uuid4().hex[:8]}"
    only_new = captioned(conn, bucket, "only-new.png")
    embedded(conn, only_new, NEW)
    only_served = captioned(conn, bucket, "only-served.png")
    embedded(conn, only_served, SERVED)
    neither = captioned(conn, bucket, "neither.png")

    # repair: what search would miss
    assert found(conn, bucket, skip_failed=True, served=True) == {only_new, neither}
    # a backfill by hand fills the model a worker started with last, or the one named
    assert found(conn, bucket) == {only_served, neither}
    assert found(conn, bucket, model=SERVED.model) == {only_new, neither}
