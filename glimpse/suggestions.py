"""Things to try searching for, from the library's own captions.

The page's "Try:" chips should name what *this* library holds ("a tabby cat"), not
fixed strings ("a horse" in a library without one). The words are the most frequent
confident top labels over a fixed pseudo-random sample of captions (the first rows in
media-id order, through the primary key), so the query costs the same at any size.
"""

from __future__ import annotations

from typing import Any

import psycopg

from glimpse.models.imagenet import with_article

SAMPLE = 2000  # captions looked at
# A top label less sure than this is a guess: suggesting it would find the wrong photo.
MIN_TOP_SCORE = 0.3


def from_library(conn: psycopg.Connection[Any], limit: int) -> list[str]:
    """Up to ``limit`` phrases ("a tabby cat"), most frequent first."""
    rows = conn.execute(
        "SELECT s.labels -> 0 ->> 0 AS label, count(*) AS n "
        "FROM (SELECT c.labels FROM captions c JOIN media m ON m.id = c.media_id "
        "      WHERE m.status = 'accepted' AND c.top_score >= %(min_score)s "
        "      ORDER BY c.media_id LIMIT %(sample)s) s "
        "WHERE jsonb_typeof(s.labels -> 0 -> 0) = 'string' "
        "GROUP BY 1 ORDER BY n DESC, label LIMIT %(limit)s",
        {"min_score": MIN_TOP_SCORE, "sample": SAMPLE, "limit": limit},
    ).fetchall()
    return [with_article(row["label"]) for row in rows]
