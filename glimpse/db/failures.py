"""SQL for ``media_failures``: what each stage dead-lettered, for `glimpse dlq` and the API.

One row per (media, stage), upserted by ``media.record_failure``; a later success of the
stage deletes it (``clear``), a re-drive stamps ``retried_at``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class Failure:
    media_id: uuid.UUID
    key: str
    media_status: str
    kind: str | None
    stage: str
    reason: str
    error_type: str
    message: str
    attempts: int
    origin: str
    failed_at: datetime
    retried_at: datetime | None


_SELECT = """
SELECT f.media_id, m.key, m.status AS media_status, m.kind, f.stage, f.reason,
       f.error_type, f.message, f.attempts, f.origin, f.failed_at, f.retried_at
FROM media_failures f JOIN media m ON m.id = f.media_id
"""
_WHERE = """
WHERE m.bucket = %(bucket)s
  AND (%(stage)s::text IS NULL OR f.stage = %(stage)s)
  AND (%(reason)s::text IS NULL OR f.reason = %(reason)s)
  AND (%(ids)s::uuid[] IS NULL OR f.media_id = ANY(%(ids)s::uuid[]))
  AND (%(retried)s OR f.retried_at IS NULL)
"""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which failures: all of a bucket, narrowed by stage, reason or media ids."""

    bucket: str
    stage: str | None = None
    reason: str | None = None
    ids: Sequence[uuid.UUID] | None = None
    retried: bool = False  # also those re-driven already

    def params(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "stage": self.stage,
            "reason": self.reason,
            "ids": None if self.ids is None else list(self.ids),
            "retried": self.retried,
        }


def select(conn: psycopg.Connection[Any], which: Selection, limit: int = 1000) -> list[Failure]:
    rows = conn.execute(
        _SELECT + _WHERE + " ORDER BY f.failed_at DESC LIMIT %(limit)s",
        {**which.params(), "limit": limit},
    ).fetchall()
    return [Failure(**r) for r in rows]


def mark_retried(conn: psycopg.Connection[Any], stage: str, ids: Sequence[uuid.UUID]) -> None:
    conn.execute(
        "UPDATE media_failures SET retried_at = now() "
        "WHERE stage = %(stage)s AND media_id = ANY(%(ids)s)",
        {"stage": stage, "ids": list(ids)},
    )


def clear(conn: psycopg.Connection[Any], stage: str, ids: Sequence[uuid.UUID]) -> None:
    """The stage succeeded on these items: their failures are history."""
    conn.execute(
        "DELETE FROM media_failures WHERE stage = %(stage)s AND media_id = ANY(%(ids)s)",
        {"stage": stage, "ids": list(ids)},
    )


def purge(conn: psycopg.Connection[Any], which: Selection) -> int:
    cursor = conn.execute(
        "DELETE FROM media_failures f USING media m WHERE m.id = f.media_id AND "
        + _WHERE.strip().removeprefix("WHERE "),
        which.params(),
    )
    return cursor.rowcount


def record(
    conn: psycopg.Connection[Any], media_id: uuid.UUID, stage: str, reason: str,
    error_type: str, message: str, attempts: int, origin: str,
) -> None:  # fmt: skip
    """A stage dead-lettered the item (no row if the media row is gone)."""
    conn.execute(
        """
        INSERT INTO media_failures (media_id, stage, reason, error_type, message, attempts,
                                    origin)
        SELECT %(id)s, %(stage)s, %(reason)s, %(error_type)s, %(message)s, %(attempts)s,
               %(origin)s
        WHERE EXISTS (SELECT 1 FROM media WHERE id = %(id)s)
        ON CONFLICT (media_id, stage) DO UPDATE SET reason = EXCLUDED.reason,
            error_type = EXCLUDED.error_type,
            message = EXCLUDED.message, attempts = EXCLUDED.attempts,
            origin = EXCLUDED.origin, failed_at = now(), retried_at = NULL
        """,
        {
            "id": media_id,
            "stage": stage,
            "reason": reason,
            "error_type": error_type,
            "message": message,
            "attempts": attempts,
            "origin": origin,
        },
    )
