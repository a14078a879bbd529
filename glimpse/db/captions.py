"""SQL for ``captions``: one caption per (media, captioner model), written idempotently,
with the cues read from the same image (words in it, colour names)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    ocr_text: str = ""
    colours: list[tuple[str, float]] = field(default_factory=list)
    cues_version: str | None = None  # None: no cues were read

    @property
    def top_score(self) -> float | None:
        return self.labels[0][1] if self.labels else None


def save(conn: psycopg.Connection[Any], rows: Sequence[CaptionRow]) -> None:
    conn.cursor().executemany(
        """
        INSERT INTO captions (media_id, model, model_revision, text, labels, top_score,
                              ocr_text, colours, cues_version)
        VALUES (%(media_id)s, %(model)s, %(revision)s, %(text)s, %(labels)s, %(top)s,
                %(ocr_text)s, %(colours)s, %(cues_version)s)
        ON CONFLICT (media_id, model) DO UPDATE
        SET model_revision = EXCLUDED.model_revision, text = EXCLUDED.text,
            labels = EXCLUDED.labels, top_score = EXCLUDED.top_score,
            ocr_text = EXCLUDED.ocr_text, colours = EXCLUDED.colours,
            cues_version = EXCLUDED.cues_version, created_at = now()
        """,
        [
            {
                "media_id": r.media_id,
                "model": r.model,
                "revision": r.model_revision,
                "text": r.text,
                "labels": Jsonb([[label, round(p, 5)] for label, p in r.labels]),
                "top": r.top_score,
                "ocr_text": r.ocr_text,
                "colours": Jsonb([[name, round(share, 3)] for name, share in r.colours]),
                "cues_version": r.cues_version,
            }
            for r in rows
        ],
    )


def stored(
    conn: psycopg.Connection[Any],
    media_ids: Sequence[uuid.UUID],
    model: str,
    revision: str,
    cues_version: str | None = None,
) -> dict[uuid.UUID, CaptionRow]:
    """Captions already stored by this model and revision with cues of this version: a
    re-delivery re-announces them instead of running the model again."""
    rows = conn.execute(
        "SELECT media_id, text, labels, ocr_text, colours FROM captions "
        "WHERE media_id = ANY(%(ids)s) AND model = %(model)s AND model_revision = %(revision)s "
        "AND cues_version IS NOT DISTINCT FROM %(cues_version)s",
        {
            "ids": list(media_ids),
            "model": model,
            "revision": revision,
            "cues_version": cues_version,
        },
    ).fetchall()
    return {
        r["media_id"]: CaptionRow(
            r["media_id"],
            model,
            revision,
            r["text"],
            [(str(n), float(p)) for n, p in r["labels"]],
            r["ocr_text"],
            [(str(n), float(s)) for n, s in r["colours"]],
            cues_version,
        )
        for r in rows
    }


def captioned_by(
    conn: psycopg.Connection[Any], media_ids: Sequence[uuid.UUID], model: str
) -> set[uuid.UUID]:
    """Which of ``media_ids`` have a caption of ``model``."""
    rows = conn.execute(
        "SELECT media_id FROM captions WHERE media_id = ANY(%(ids)s) AND model = %(model)s",
        {"ids": list(media_ids), "model": model},
    ).fetchall()
    return {r["media_id"] for r in rows}
