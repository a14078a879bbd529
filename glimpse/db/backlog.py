"""What a stage still has to do, found in Postgres: for backfill jobs, stage repair and
the progress both show.

Every finder walks the media table in id order from a cursor (keyset pages), so a job
of a million items holds one page in memory and resumes after the last item it
enqueued. ``mode`` "missing" finds items without a result of ``model``; "all" finds
every item in scope (a re-run after a model or rule change). The scope keeps to items
untouched since ``cutoff``: work younger than that is the live pipeline's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg

from glimpse.media.limits import REJECTED_UNDER
from glimpse.messages import MediaAccepted, TextReady

Mode = Literal["missing", "all"]
FIRST_ID = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class Scope:
    bucket: str
    cutoff: datetime  # only media whose row was last written before this
    prefix: str = ""
    since: datetime | None = None  # only media created since
    ids: tuple[uuid.UUID, ...] | None = None  # only these (a DLQ re-drive)

    def params(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "cutoff": self.cutoff,
            "prefix": like_prefix(self.prefix),
            "since": self.since or datetime.min.replace(tzinfo=UTC),
            "ids": None if self.ids is None else list(self.ids),
        }


def like_prefix(prefix: str) -> str:
    """A LIKE pattern for keys starting with ``prefix`` (its own % and _ taken literally)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


_IN_SCOPE = """
    m.bucket = %(bucket)s AND m.status = 'accepted' AND m.key LIKE %(prefix)s
    AND m.created_at >= %(since)s AND m.updated_at < %(cutoff)s
    AND (%(ids)s::uuid[] IS NULL OR m.id = ANY(%(ids)s::uuid[]))
"""
# Repair leaves alone an item this stage dead-lettered since its workers last started:
# the cause is likely still there. A restart (a deploy, a model or limit change) or
# `glimpse dlq retry` gives it another chance.
_NOT_FAILED_LATELY = """
    AND (%(failed_since)s::timestamptz IS NULL OR NOT EXISTS (
        SELECT 1 FROM media_failures f WHERE f.media_id = m.id AND f.stage = %(stage)s
        AND f.retried_at IS NULL AND f.failed_at >= %(failed_since)s))
"""

# Images: a caption of the captioner, its visual vector where it makes one, and the
# image vector of the joint model the caption workers run, if they run one.
_CAPTION_WORK = (
    _IN_SCOPE
    + _NOT_FAILED_LATELY
    + """
    AND m.kind = 'image'
    AND (%(all)s
         OR NOT EXISTS (SELECT 1 FROM captions c
                        WHERE c.media_id = m.id AND c.model = %(model)s)
         OR (%(visual)s AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.media_id = m.id
                                        AND e.model = %(model)s AND e.kind = 'visual'))
         OR (%(joint)s::text IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.media_id = m.id
                             AND e.model = %(joint)s AND e.kind = 'joint')))
"""
)
_TRANSCRIBE_WORK = (
    _IN_SCOPE
    + _NOT_FAILED_LATELY
    + """
    AND m.kind = 'audio'
    AND (%(all)s OR NOT EXISTS (SELECT 1 FROM transcripts t
                                WHERE t.media_id = m.id AND t.model = %(model)s))
"""
)
# The text of the captioner or transcriber the workers run, and no vector of the text
# model as new as that text and made from it (not from another captioner's caption).
_TEXTS = """
    media m JOIN LATERAL (
        SELECT 'caption' AS source, c.model, c.text, c.created_at FROM captions c
        WHERE c.media_id = m.id AND c.model = %(captioner)s
        UNION ALL
        SELECT 'transcript', t.model, t.text, t.created_at FROM transcripts t
        WHERE t.media_id = m.id AND t.model = %(transcriber)s
    ) s ON true
"""
_EMBED_WORK = (
    _IN_SCOPE
    + _NOT_FAILED_LATELY
    + """
    AND (%(all)s OR NOT EXISTS (SELECT 1 FROM embeddings e
                                WHERE e.media_id = m.id AND e.model = %(model)s
                                AND e.kind = 'text' AND e.created_at >= s.created_at
                                AND (e.source_model IS NULL OR e.source_model = s.model)))
"""
)
_PAGE = " AND m.id > %(after)s ORDER BY m.id LIMIT %(limit)s"

# Done since the job began: a result of the model written after ``began``, for an item
# the job reached (id at or before its cursor).
_DONE = {
    "caption": "EXISTS (SELECT 1 FROM captions r WHERE r.media_id = m.id "
    "AND r.model = %(model)s AND r.created_at >= %(began)s)",
    "transcribe": "EXISTS (SELECT 1 FROM transcripts r WHERE r.media_id = m.id "
    "AND r.model = %(model)s AND r.created_at >= %(began)s)",
    "embed": "EXISTS (SELECT 1 FROM embeddings r WHERE r.media_id = m.id "
    "AND r.model = %(model)s AND r.kind = 'text' AND r.created_at >= %(began)s)",
}
_KIND = {"caption": "AND m.kind = 'image'", "transcribe": "AND m.kind = 'audio'", "embed": ""}


@dataclass(frozen=True, slots=True)
class Models:
    """The models a stage's work is for (``model``) and reads from."""

    stage: str
    model: str
    visual: bool = False  # caption: the captioner also writes a visual vector
    joint: str | None = None  # caption: the joint model whose image vectors it writes
    captioner: str | None = None  # embed: whose captions are embedded
    transcriber: str | None = None  # embed: whose transcripts are embedded
    # skip items this stage dead-lettered since then (None: take them too)
    failed_since: datetime | None = None

    def params(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "model": self.model,
            "visual": self.visual,
            "joint": self.joint,
            "captioner": self.captioner,
            "transcriber": self.transcriber,
            "failed_since": self.failed_since,
        }


def captions_wanted(
    conn: psycopg.Connection[Any], scope: Scope, models: Models, mode: Mode,
    after: uuid.UUID, limit: int,
) -> list[MediaAccepted]:  # fmt: skip
    return _media_wanted(conn, _CAPTION_WORK, _params(scope, models, mode, after, limit))


def transcripts_wanted(
    conn: psycopg.Connection[Any], scope: Scope, models: Models, mode: Mode,
    after: uuid.UUID, limit: int,
) -> list[MediaAccepted]:  # fmt: skip
    return _media_wanted(conn, _TRANSCRIBE_WORK, _params(scope, models, mode, after, limit))


def _media_wanted(
    conn: psycopg.Connection[Any], work: str, params: dict[str, Any]
) -> list[MediaAccepted]:
    rows = conn.execute("SELECT m.* FROM media m WHERE " + work + _PAGE, params).fetchall()
    return [MediaAccepted.from_row(r) for r in rows]


def vectors_wanted(
    conn: psycopg.Connection[Any], scope: Scope, models: Models, mode: Mode,
    after: uuid.UUID, limit: int,
) -> list[TextReady]:  # fmt: skip
    rows = conn.execute(
        "SELECT m.id AS media_id, s.source, s.model, s.text FROM "
        + _TEXTS
        + " WHERE "
        + _EMBED_WORK
        + _PAGE,
        _params(scope, models, mode, after, limit),
    ).fetchall()
    return [TextReady.model_validate(r) for r in rows]


def count_wanted(
    conn: psycopg.Connection[Any], stage: str, scope: Scope, models: Models, mode: Mode
) -> int:
    """How many items the finder of ``stage`` would return in all."""
    query = {
        "caption": "SELECT count(*) AS n FROM media m WHERE " + _CAPTION_WORK,
        "transcribe": "SELECT count(*) AS n FROM media m WHERE " + _TRANSCRIBE_WORK,
        "embed": "SELECT count(*) AS n FROM " + _TEXTS + " WHERE " + _EMBED_WORK,
    }[stage]
    row = conn.execute(query, _params(scope, models, mode, FIRST_ID, 0)).fetchone()
    return int(row["n"]) if row else 0


def count_done(
    conn: psycopg.Connection[Any],
    stage: str,
    scope: Scope,
    model: str,
    cursor: uuid.UUID,
    began: datetime,
) -> int:
    """Items up to ``cursor`` with a result of ``model`` written since ``began``."""
    query = (
        "SELECT count(*) AS n FROM media m WHERE "
        + _IN_SCOPE
        + _KIND[stage]
        + " AND m.id <= %(cursor)s AND "
        + _DONE[stage]
    )
    params = {**scope.params(), "model": model, "cursor": cursor, "began": began}
    row = conn.execute(query, params).fetchone()
    return int(row["n"]) if row else 0


def _params(
    scope: Scope, models: Models, mode: Mode, after: uuid.UUID, limit: int
) -> dict[str, Any]:
    return {
        **scope.params(),
        **models.params(),
        "all": mode == "all",
        "after": after,
        "limit": limit,
    }


def count_ingested(
    conn: psycopg.Connection[Any], bucket: str, prefix: str, cursor: str, began: datetime
) -> int:
    """Rows of keys up to ``cursor`` (byte order, as S3 lists) written since ``began``."""
    row = conn.execute(
        "SELECT count(*) AS n FROM media WHERE bucket = %(bucket)s AND key LIKE %(prefix)s "
        'AND key COLLATE "C" <= %(cursor)s AND updated_at >= %(began)s',
        {"bucket": bucket, "prefix": like_prefix(prefix), "cursor": cursor, "began": began},
    ).fetchone()
    return int(row["n"]) if row else 0


def rejected_by_a_limit(
    conn: psycopg.Connection[Any], bucket: str, after: uuid.UUID, limit: int
) -> list[tuple[uuid.UUID, str, str]]:
    """(id, key, the limit it ran into) of rejected files still in the bucket that a
    limit turned away, in id order after ``after``."""
    rows = conn.execute(
        "SELECT id, key, metadata ->> %(under)s AS under FROM media "
        "WHERE bucket = %(bucket)s AND status = 'rejected' AND metadata ? %(under)s "
        "AND id > %(after)s ORDER BY id LIMIT %(limit)s",
        {"bucket": bucket, "under": REJECTED_UNDER, "after": after, "limit": limit},
    ).fetchall()
    return [(r["id"], r["key"], r["under"]) for r in rows]


def failed_before_restart(
    conn: psycopg.Connection[Any], bucket: str, cutoff: datetime, after: uuid.UUID, limit: int
) -> list[tuple[uuid.UUID, str, str]]:
    """(id, key, stage) of media rows a stage marked failed (ingest, transcribe) before
    that stage's workers last started, untouched since ``cutoff`` and not re-driven
    since they failed, in id order after ``after``: their cause may be gone."""
    rows = conn.execute(
        "SELECT m.id, m.key, f.stage FROM media m "
        "JOIN media_failures f ON f.media_id = m.id "
        "JOIN worker_starts w ON w.stage = f.stage "
        "WHERE m.bucket = %(bucket)s AND m.status = 'failed' AND m.updated_at < %(cutoff)s "
        "AND f.retried_at IS NULL AND f.failed_at < w.started_at "
        "AND m.id > %(after)s ORDER BY m.id LIMIT %(limit)s",
        {"bucket": bucket, "cutoff": cutoff, "after": after, "limit": limit},
    ).fetchall()
    return [(r["id"], r["key"], r["stage"]) for r in rows]
