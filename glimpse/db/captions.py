"""SQL for ``captions``: one caption per (media, captioner model), written idempotently."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True, slots=True)
class CaptionRow:
    media_id: uuid.UUID
    model: str
    model_revision: str
    text: str
    labels: list[tuple[str, float]]

    @property
    def top_score(self) -> float | None:
        return self.labels[0][1] if self.labels else None


def save(conn: psycopg.Connection[Any], rows: Sequence[CaptionRow]) -> None:
    conn.cursor().executemany(
        """
        INSERT INTO captions (media_id, model, model_revision, text, labels, top_score)
        VALUES (%(media_id)s, %(model)s, %(revision)s, %(text)s, %(labels)s, %(top)s)
        ON CONFLICT (media_id, model) DO UPDATE
        SET model_revision = EXCLUDED.model_revision, text = EXCLUDED.text,
            labels = EXCLUDED.labels, top_score = EXCLUDED.top_score, created_at = now()
        """,
        [
            {
                "media_id": r.media_id,
                "model": r.model,
                "revision": r.model_revision,
                "text": r.text,
                "labels": Jsonb([[label, round(p, 5)] for label, p in r.labels]),
                "top": r.top_score,
            }
            for r in rows
        ],
    )


def stored(
    conn: psycopg.Connection[Any], media_ids: Sequence[uuid.UUID], model: str, revision: str
) -> dict[uuid.UUID, CaptionRow]:
    """Captions already stored by this model and revision: a re-delivery re-announces
    them instead of running the model again."""
    rows = conn.execute(
        "SELECT media_id, text, labels FROM captions WHERE media_id = ANY(%(ids)s) "
        "AND model = %(model)s AND model_revision = %(revision)s",
        {"ids": list(media_ids), "model": model, "revision": revision},
    ).fetchall()
    return {
        r["media_id"]: CaptionRow(
            r["media_id"], model, revision, r["text"], [(str(n), float(p)) for n, p in r["labels"]]
        )
        for r in rows
    }
