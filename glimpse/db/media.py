"""SQL for the ``media`` table: one row per object key, written idempotently."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from glimpse.db import failures
from glimpse.errors import PROCESSING_ERROR

if TYPE_CHECKING:
    from glimpse.runtime import DeadLetter

# Fixed namespace: media ids are stable across processes, machines and re-deliveries.
MEDIA_NAMESPACE = uuid.UUID("6b1f1c52-3f57-4c35-9a4e-6f0d0c6f9d11")


class MediaStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    DELETED = "deleted"
    FAILED = "failed"


def media_id(bucket: str, key: str) -> uuid.UUID:
    return uuid.uuid5(MEDIA_NAMESPACE, f"{bucket}/{key}")


@dataclass(slots=True)
class MediaRow:
    """Everything ingest learns about one object."""

    bucket: str
    key: str
    status: MediaStatus
    etag: str | None = None
    reason: str | None = None
    reason_detail: str | None = None
    kind: str | None = None
    mime: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    captured_at: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    thumbnail_key: str | None = None
    duplicate_of: uuid.UUID | None = None

    @property
    def id(self) -> uuid.UUID:
        return media_id(self.bucket, self.key)

    def columns(self) -> dict[str, Any]:
        """The row as column → value, id included."""
        return {**asdict(self), "id": self.id}


_SAVE = """
INSERT INTO media (id, bucket, key, etag, status, reason, reason_detail, kind, mime,
                   size_bytes, sha256, width, height, duration_s, captured_at, metadata,
                   thumbnail_key, duplicate_of)
VALUES (%(id)s, %(bucket)s, %(key)s, %(etag)s, %(status)s, %(reason)s, %(reason_detail)s,
        %(kind)s, %(mime)s, %(size_bytes)s, %(sha256)s, %(width)s, %(height)s, %(duration_s)s,
        %(captured_at)s, %(metadata)s, %(thumbnail_key)s, %(duplicate_of)s)
ON CONFLICT (id) DO UPDATE SET
    etag = EXCLUDED.etag, status = EXCLUDED.status, reason = EXCLUDED.reason,
    reason_detail = EXCLUDED.reason_detail, kind = EXCLUDED.kind, mime = EXCLUDED.mime,
    size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256, width = EXCLUDED.width,
    height = EXCLUDED.height, duration_s = EXCLUDED.duration_s,
    captured_at = EXCLUDED.captured_at, metadata = EXCLUDED.metadata,
    thumbnail_key = EXCLUDED.thumbnail_key, duplicate_of = EXCLUDED.duplicate_of,
    updated_at = now(), deleted_at = NULL
"""


#: in ``metadata`` of a rejected upload that ingest removed from the bucket (reconcile
#: and deletes leave such rows alone; a new upload to the key replaces the row)
REMOVED_FROM_BUCKET = "removed_from_bucket"


def save(conn: psycopg.Connection[Any], row: MediaRow) -> dict[str, Any] | None:
    """Insert or replace the row for ``row``'s key (an overwrite replaces the old version).

    When the old version was the accepted original of content that duplicates still
    have, the oldest of them takes its place: that promoted row is returned, to be
    processed like a fresh accept (None otherwise).
    """
    previous = conn.execute(
        "SELECT sha256 FROM media WHERE id = %(id)s FOR UPDATE", {"id": row.id}
    ).fetchone()
    params = row.columns()
    params["metadata"] = Jsonb(row.metadata)
    conn.execute(_SAVE, params)
    # ingest reached a result: an earlier ingest failure of the key is history
    conn.execute(
        "DELETE FROM media_failures WHERE media_id = %(id)s AND stage = 'ingest'", {"id": row.id}
    )
    if previous is None or previous["sha256"] is None:
        return None
    return promote_duplicate(conn, previous["sha256"])


def get(conn: psycopg.Connection[Any], id_: uuid.UUID) -> dict[str, Any] | None:
    row: dict[str, Any] | None = conn.execute(
        "SELECT * FROM media WHERE id = %(id)s", {"id": id_}
    ).fetchone()
    return row


def find_original(
    conn: psycopg.Connection[Any], sha256: str, exclude: uuid.UUID
) -> uuid.UUID | None:
    """The accepted media with this content, other than ``exclude``.

    The row stays locked (FOR SHARE) until the transaction ends: a delete of that
    original waits for the duplicate being recorded, then promotes it; a delete already
    under way makes this wait and find no original (the upload is then accepted).
    """
    row = conn.execute(
        "SELECT id FROM media WHERE sha256 = %(sha256)s AND status = 'accepted' AND id <> %(id)s"
        " FOR SHARE",
        {"sha256": sha256, "id": exclude},
    ).fetchone()
    return row["id"] if row else None


def mark_deleted(conn: psycopg.Connection[Any], bucket: str, key: str) -> dict[str, Any] | None:
    """Mark the key's row deleted; returns the row as it was, or None if unknown (or a
    rejected upload glimpse removed itself: its row keeps saying why)."""
    row: dict[str, Any] | None = conn.execute(
        """
        UPDATE media SET status = 'deleted', deleted_at = now(), updated_at = now()
        WHERE id = %(id)s AND status <> 'deleted' AND NOT metadata ? %(removed)s
        RETURNING id, sha256, thumbnail_key
        """,
        {"id": media_id(bucket, key), "removed": REMOVED_FROM_BUCKET},
    ).fetchone()
    return row


_PROMOTE = """
UPDATE media SET status = 'accepted', duplicate_of = NULL, updated_at = now()
WHERE id = (
    SELECT id FROM media WHERE sha256 = %(sha256)s AND status = 'duplicate'
    ORDER BY created_at, id LIMIT 1 FOR UPDATE
) AND NOT EXISTS (SELECT 1 FROM media WHERE sha256 = %(sha256)s AND status = 'accepted')
RETURNING *
"""


def promote_duplicate(conn: psycopg.Connection[Any], sha256: str) -> dict[str, Any] | None:
    """If no accepted original of this content is left (deleted or overwritten), the
    oldest duplicate becomes it and the other duplicates point at it. Returns the
    promoted row, or None (an original exists, or no duplicate is left)."""
    promoted: dict[str, Any] | None = conn.execute(_PROMOTE, {"sha256": sha256}).fetchone()
    if promoted is not None:
        conn.execute(
            "UPDATE media SET duplicate_of = %(id)s, updated_at = now() "
            "WHERE sha256 = %(sha256)s AND status = 'duplicate'",
            {"id": promoted["id"], "sha256": sha256},
        )
    return promoted


def reject_accepted(
    conn: psycopg.Connection[Any], id_: uuid.UUID, reason: str, detail: str
) -> bool:
    """A later stage found an accepted item unusable (e.g. audio with no speech): mark it
    rejected with the reason. False if the row is no longer accepted."""
    row = conn.execute(
        """
        UPDATE media SET status = 'rejected', reason = %(reason)s, reason_detail = %(detail)s,
            updated_at = now()
        WHERE id = %(id)s AND status = 'accepted'
        RETURNING id
        """,
        {"id": id_, "reason": reason, "detail": detail},
    ).fetchone()
    return row is not None


def thumbnail_in_use(conn: psycopg.Connection[Any], thumbnail_key: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM media WHERE thumbnail_key = %(t)s AND status <> 'deleted' LIMIT 1",
        {"t": thumbnail_key},
    ).fetchone()
    return row is not None


def record_failure(
    conn: psycopg.Connection[Any],
    bucket: str,
    key: str,
    stage: str,
    error_type: str,
    message: str,
    attempts: int,
    origin: str,
    fail_media: bool,
    reason: str = PROCESSING_ERROR,
) -> None:
    """Record a dead-lettered stage failure; ``fail_media`` also marks the row failed
    (for ingest, where no other result exists)."""
    id_ = media_id(bucket, key)
    if fail_media:
        conn.execute(
            """
            INSERT INTO media (id, bucket, key, status, reason, reason_detail)
            VALUES (%(id)s, %(bucket)s, %(key)s, 'failed', %(reason)s, %(detail)s)
            ON CONFLICT (id) DO UPDATE SET status = 'failed', reason = EXCLUDED.reason,
                reason_detail = EXCLUDED.reason_detail, updated_at = now()
            """,
            {
                "id": id_,
                "bucket": bucket,
                "key": key,
                "reason": reason,
                "detail": f"{stage}: {message}",
            },
        )
    failures.record(conn, id_, stage, reason, error_type, message, attempts, origin)


def record_dead_letter(
    conn: psycopg.Connection[Any], bucket: str, key: str, letter: DeadLetter, fail_media: bool
) -> None:
    """``record_failure`` for a message the worker runtime dead-lettered."""
    record_failure(
        conn,
        bucket,
        key,
        letter.stage,
        letter.error_type,
        letter.message,
        letter.attempts,
        letter.origin,
        fail_media=fail_media,
        reason=letter.reason,
    )


def status_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT status, count(*) AS n FROM media GROUP BY status").fetchall()
    return {r["status"]: r["n"] for r in rows}


def stage_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """How far the pipeline got: captions, transcripts and vectors stored, over all models."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM captions) AS captioned, "
        "(SELECT count(*) FROM transcripts) AS transcribed, "
        "(SELECT count(*) FROM embeddings WHERE kind = 'text') AS text_vectors, "
        "(SELECT count(*) FROM embeddings WHERE kind = 'visual') AS visual_vectors"
    ).fetchone()
    return dict(row) if row else {}


@dataclass(frozen=True, slots=True)
class KnownVersion:
    """A live row as reconcile compares it with the bucket listing."""

    key: str
    etag: str | None
    updated_at: datetime


_KNOWN_PAGE = """
SELECT key, etag, updated_at FROM media
WHERE bucket = %(bucket)s AND status <> 'deleted' AND NOT metadata ? 'removed_from_bucket'
  AND key COLLATE "C" > %(after)s
ORDER BY key COLLATE "C"
LIMIT %(limit)s
"""


def known_versions(
    conn: psycopg.Connection[Any], bucket: str, page_size: int = 1000
) -> Iterator[KnownVersion]:
    """Every row that is not deleted, in byte order of its key (the order S3 lists
    keys in: COLLATE "C", not the database's locale), read in keyset pages so memory
    stays at one page whatever the table's size."""
    after = ""  # every key sorts after the empty string
    while True:
        rows = conn.execute(
            _KNOWN_PAGE, {"bucket": bucket, "after": after, "limit": page_size}
        ).fetchall()
        for r in rows:
            yield KnownVersion(r["key"], r["etag"], r["updated_at"])
        if len(rows) < page_size:
            return
        after = rows[-1]["key"]


def current_etags(
    conn: psycopg.Connection[Any], bucket: str, keys: Sequence[str]
) -> dict[str, str | None]:
    """key → etag of those of ``keys`` that have a live row now."""
    rows = conn.execute(
        "SELECT key, etag FROM media "
        "WHERE bucket = %(bucket)s AND key = ANY(%(keys)s) AND status <> 'deleted' "
        "AND NOT metadata ? 'removed_from_bucket'",
        {"bucket": bucket, "keys": list(keys)},
    ).fetchall()
    return {r["key"]: r["etag"] for r in rows}


def page(
    conn: psycopg.Connection[Any],
    *,
    status: str | None,
    kind: str | None,
    prefix: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (created_at, id)."""
    rows: list[dict[str, Any]] = conn.execute(
        """
        SELECT * FROM media
        WHERE (%(status)s::text IS NULL OR status = %(status)s)
          AND (%(kind)s::text IS NULL OR kind = %(kind)s)
          AND (%(prefix)s::text IS NULL OR key LIKE %(like)s)
          AND (%(after_ts)s::timestamptz IS NULL OR (created_at, id) < (%(after_ts)s, %(after_id)s))
        ORDER BY created_at DESC, id DESC
        LIMIT %(limit)s
        """,
        {
            "status": status,
            "kind": kind,
            "prefix": prefix,
            "like": _like_prefix(prefix) if prefix else None,
            "after_ts": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        },
    ).fetchall()
    return rows


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def accepted_ids(conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``ids`` are still accepted: later stages skip deleted or replaced media."""
    rows = conn.execute(
        "SELECT id FROM media WHERE id = ANY(%(ids)s) AND status = 'accepted'", {"ids": list(ids)}
    ).fetchall()
    return {r["id"] for r in rows}


_DETAILS = """
SELECT m.*, c.text AS caption, coalesce(c.labels, '[]'::jsonb) AS labels,
       nullif(c.ocr_text, '') AS text_in_image, coalesce(c.colours, '[]'::jsonb) AS colours,
       t.text AS transcript, t.language, coalesce(t.segments, '[]'::jsonb) AS segments,
       m.status = 'accepted' AND EXISTS (
           SELECT 1 FROM embeddings e WHERE e.media_id = m.id AND e.kind = 'text'
       ) AS searchable,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'stage', f.stage, 'reason', f.reason, 'error', f.error_type,
                   'message', f.message, 'attempts', f.attempts,
                   'failed_at', f.failed_at, 'retried_at', f.retried_at)
                ORDER BY f.failed_at), '[]')
        FROM media_failures f WHERE f.media_id = m.id) AS failures,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'label_set', l.label_set, 'label', l.label, 'confidence', l.confidence,
                   'unsure', NOT l.corrected AND l.confidence < s.unsure_below,
                   'corrected', l.corrected) ORDER BY l.label_set), '[]')
        FROM media_labels l
        JOIN label_sets s ON s.name = l.label_set AND s.active_version IS NOT NULL
        WHERE l.media_id = m.id) AS custom_labels
FROM media m
LEFT JOIN LATERAL (
    SELECT text, labels, ocr_text, colours FROM captions
    WHERE media_id = m.id ORDER BY model IN (SELECT model FROM stage_models
                                             WHERE role = 'captioner' AND active) DESC,
                                   created_at DESC LIMIT 1
) c ON true
LEFT JOIN LATERAL (
    SELECT text, language, segments FROM transcripts
    WHERE media_id = m.id ORDER BY model IN (SELECT model FROM stage_models
                                             WHERE role = 'transcriber' AND active) DESC,
                                   created_at DESC LIMIT 1
) t ON true
WHERE m.id = ANY(%(ids)s)
"""


def details(
    conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Media rows with their caption or transcript (the active model's, else the latest),
    whether search can find
    them, what any stage dead-lettered, and the tags of active label sets."""
    rows = conn.execute(_DETAILS, {"ids": list(ids)}).fetchall()
    return {r["id"]: r for r in rows}


def seconds_since_created(
    conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID]
) -> list[tuple[str, float]]:
    """(kind, seconds since the row was created) of each of ``ids``: how long an upload
    took to get where the caller is."""
    rows = conn.execute(
        "SELECT kind, extract(epoch FROM clock_timestamp() - created_at)::float8 AS seconds "
        "FROM media WHERE id = ANY(%(ids)s)",
        {"ids": list(ids)},
    ).fetchall()
    return [(r["kind"] or "unknown", r["seconds"]) for r in rows]
