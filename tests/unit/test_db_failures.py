"""Dead-letter records: one per item and stage, re-driven, failed again, or done with."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from glimpse.db import failures, media
from glimpse.db.failures import Selection
from glimpse.db.media import MediaRow, MediaStatus


@pytest.fixture
def conn(postgres: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres, row_factory=dict_row, autocommit=True) as c:
        yield c


@pytest.fixture
def bucket() -> str:
    return f"dlq-{uuid.uuid4().hex[:8]}"


def item(conn: psycopg.Connection[Any], bucket: str, key: str) -> uuid.UUID:
    row = MediaRow(bucket=bucket, key=key, status=MediaStatus.ACCEPTED, etag="e", kind="image")
    media.save(conn, row)
    return row.id


def fail(conn: psycopg.Connection[Any], mid: uuid.UUID, stage: str, reason: str) -> None:
    failures.record(conn, mid, stage, reason, "ValueError", "cannot decode", 3, "t/0@7")


def test_failures_are_listed_by_stage_and_reason_until_re_driven(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    a, b = item(conn, bucket, "a.png"), item(conn, bucket, "b.png")
    fail(conn, a, "caption", "processing_error")
    fail(conn, b, "embed", "crashed_worker")

    everything = failures.select(conn, Selection(bucket))
    assert {(f.key, f.stage, f.reason) for f in everything} == {
        ("a.png", "caption", "processing_error"), ("b.png", "embed", "crashed_worker")
    }  # fmt: skip
    assert [f.key for f in failures.select(conn, Selection(bucket, stage="embed"))] == ["b.png"]
    crashed = failures.select(conn, Selection(bucket, reason="crashed_worker"))
    assert [f.key for f in crashed] == ["b.png"]

    failures.mark_retried(conn, "caption", [a])
    assert [f.key for f in failures.select(conn, Selection(bucket))] == ["b.png"]
    (again,) = failures.select(conn, Selection(bucket, ids=[a], retried=True))
    assert again.retried_at is not None

    fail(conn, a, "caption", "processing_error")  # it failed again after the re-drive
    (failed_again,) = failures.select(conn, Selection(bucket, ids=[a]))
    assert failed_again.retried_at is None


def test_a_success_clears_the_stage_failure_and_purge_forgets_records(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    a, b = item(conn, bucket, "a.png"), item(conn, bucket, "b.png")
    fail(conn, a, "caption", "processing_error")
    fail(conn, a, "ingest", "processing_error")
    fail(conn, b, "caption", "thumbnail_missing")

    failures.clear(conn, "caption", [a])
    media.save(conn, MediaRow(bucket=bucket, key="a.png", status=MediaStatus.ACCEPTED, etag="f"))
    assert [(f.key, f.stage) for f in failures.select(conn, Selection(bucket))] == [
        ("b.png", "caption")
    ]  # ingest's new result cleared its failure too

    assert failures.purge(conn, Selection(bucket, reason="thumbnail_missing")) == 1
    assert failures.select(conn, Selection(bucket, retried=True)) == []
