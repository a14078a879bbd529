"""Why a hit matched: which parts of its text hold one of the query's words.

Full-text search matches a whole document (caption, words read in the image, colour
names); a person wants to know which part said it. Each part is tested on its own
against the query's words joined by OR, so "red car" names the colours for "red" and
the caption for "car".
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

CAPTION = "caption"
TEXT_IN_IMAGE = "text in image"
COLOURS = "colours"
IMAGE = "image"  # the image itself, through the joint image-text model
TRANSCRIPT = "transcript"

# websearch syntax: quotes, a leading minus and the word "or" mean something there
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")  # noqa: RUF001


def any_word(query: str) -> str:
    """The query's words as a websearch OR query ("red car" -> "red or car")."""
    words = [w for w in _WORD.findall(query) if w.lower() != "or"]
    return " or ".join(words)


def matched_parts(
    conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID], query: str
) -> dict[uuid.UUID, list[str]]:
    """For each media id: the parts of its caption or transcript (the active model's, else
    the latest) that hold a word
    of ``query`` (stop words and stems as full-text search treats them)."""
    words = any_word(query)
    if not words or not ids:
        return {}
    rows = conn.execute(
        """
        SELECT m.id,
               coalesce(to_tsvector('english', c.text) @@ q, false) AS caption,
               coalesce(to_tsvector('english', c.ocr_text) @@ q, false) AS ocr,
               coalesce(jsonb_to_tsvector('english', c.colours, '["string"]') @@ q, false)
                   AS colours,
               coalesce(t.tsv @@ q, false) AS transcript
        FROM media m
        CROSS JOIN websearch_to_tsquery('english', %(words)s) q
        LEFT JOIN LATERAL (
            SELECT text, ocr_text, colours FROM captions WHERE media_id = m.id
            ORDER BY model IN (SELECT model FROM stage_models
                               WHERE role = 'captioner' AND active) DESC,
                     created_at DESC LIMIT 1
        ) c ON true
        LEFT JOIN LATERAL (
            SELECT tsv FROM transcripts WHERE media_id = m.id
            ORDER BY model IN (SELECT model FROM stage_models
                               WHERE role = 'transcriber' AND active) DESC,
                     created_at DESC LIMIT 1
        ) t ON true
        WHERE m.id = ANY(%(ids)s)
        """,
        {"ids": list(ids), "words": words},
    ).fetchall()
    parts = {"caption": CAPTION, "ocr": TEXT_IN_IMAGE, "colours": COLOURS,
             "transcript": TRANSCRIPT}  # fmt: skip
    return {r["id"]: [name for column, name in parts.items() if r[column]] for r in rows}
