"""SQL for ``transcripts``: one transcript per (media, speech model), written idempotently."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True, slots=True)
class TranscriptRow:
    media_id: uuid.UUID
    model: str
    model_revision: str
    language: str
    language_probability: float | None
    duration_s: float
    text: str
    segments: Sequence[tuple[float, float, str]]  # (start s, end s, text)


def save(conn: psycopg.Connection[Any], row: TranscriptRow) -> None:
    conn.execute(
        """
        INSERT INTO transcripts (media_id, model, model_revision, language,
                                 language_probability, duration_s, text, segments)
        VALUES (%(media_id)s, %(model)s, %(revision)s, %(language)s, %(probability)s,
                %(duration)s, %(text)s, %(segments)s)
        ON CONFLICT (media_id, model) DO UPDATE
        SET model_revision = EXCLUDED.model_revision, language = EXCLUDED.language,
            language_probability = EXCLUDED.language_probability,
            duration_s = EXCLUDED.duration_s, text = EXCLUDED.text,
            segments = EXCLUDED.segments, created_at = now()
        """,
        {
            "media_id": row.media_id,
            "model": row.model,
            "revision": row.model_revision,
            "language": row.language,
            "probability": row.language_probability,
            "duration": row.duration_s,
            "text": row.text,
            "segments": Jsonb([[round(s, 2), round(e, 2), t] for s, e, t in row.segments]),
        },
    )
