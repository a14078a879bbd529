"""SQL for ``voice_queries``: a spoken search from its clip to its transcript.

The API inserts the row (pending) before it asks for the transcription; the
transcribe service finishes it and notifies ``CHANNEL`` in the same transaction, so
a listener hears of it exactly when the result can be read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

CHANNEL = "glimpse_voice_queries"


@dataclass(frozen=True, slots=True)
class VoiceQueryRow:
    id: uuid.UUID
    bucket: str
    clip_key: str
    mime: str
    size_bytes: int


def create(conn: psycopg.Connection[Any], row: VoiceQueryRow, awaited_for: timedelta) -> None:
    """Record a pending query that its caller waits for during ``awaited_for``."""
    conn.execute(
        "INSERT INTO voice_queries (id, bucket, clip_key, mime, size_bytes, awaited_until) "
        "VALUES (%(id)s, %(bucket)s, %(key)s, %(mime)s, %(size)s, now() + %(awaited)s) "
        "ON CONFLICT (id) DO NOTHING",
        {
            "id": row.id,
            "bucket": row.bucket,
            "key": row.clip_key,
            "mime": row.mime,
            "size": row.size_bytes,
            "awaited": awaited_for,
        },
    )


def get(conn: psycopg.Connection[Any], query_id: uuid.UUID) -> dict[str, Any] | None:
    """The row, plus ``abandoned``: pending and nobody known to wait for it any more."""
    return conn.execute(
        "SELECT *, (status = 'pending' AND awaited_until < now()) AS abandoned "
        "FROM voice_queries WHERE id = %(id)s",
        {"id": query_id},
    ).fetchone()


def still_awaited(conn: psycopg.Connection[Any], query_id: uuid.UUID, for_: timedelta) -> None:
    """A caller asked for the answer: keep the query wanted for ``for_`` more."""
    conn.execute(
        "UPDATE voice_queries SET awaited_until = greatest(awaited_until, now() + %(for)s) "
        "WHERE id = %(id)s AND status = 'pending'",
        {"id": query_id, "for": for_},
    )


def finish(
    conn: psycopg.Connection[Any],
    query_id: uuid.UUID,
    *,
    transcript: str,
    language: str,
    duration_s: float,
    model: str,
) -> None:
    conn.execute(
        "UPDATE voice_queries SET status = 'done', transcript = %(text)s, "
        "language = %(language)s, duration_s = %(duration)s, model = %(model)s, "
        "reason = NULL, reason_detail = NULL, finished_at = now() WHERE id = %(id)s",
        {
            "id": query_id,
            "text": transcript,
            "language": language,
            "duration": duration_s,
            "model": model,
        },
    )
    _notify(conn, query_id)


def fail(conn: psycopg.Connection[Any], query_id: uuid.UUID, reason: str, detail: str) -> None:
    conn.execute(
        "UPDATE voice_queries SET status = 'failed', reason = %(reason)s, "
        "reason_detail = %(detail)s, finished_at = now() WHERE id = %(id)s",
        {"id": query_id, "reason": reason, "detail": detail},
    )
    _notify(conn, query_id)


def _notify(conn: psycopg.Connection[Any], query_id: uuid.UUID) -> None:
    # Delivered at commit, and only if the transaction commits.
    conn.execute("SELECT pg_notify(%(channel)s, %(id)s)", {"channel": CHANNEL, "id": str(query_id)})


def expired(
    conn: psycopg.Connection[Any], older_than: timedelta, limit: int = 500
) -> list[dict[str, Any]]:
    """Queries past their retention, oldest first."""
    return conn.execute(
        "SELECT id, bucket, clip_key FROM voice_queries "
        "WHERE created_at < now() - %(age)s ORDER BY created_at LIMIT %(limit)s",
        {"age": older_than, "limit": limit},
    ).fetchall()


def delete(conn: psycopg.Connection[Any], query_id: uuid.UUID) -> None:
    conn.execute("DELETE FROM voice_queries WHERE id = %(id)s", {"id": query_id})
