"""How many items each model covers: accepted media with a result of that model.

What ``glimpse models list`` shows and ``activate`` compares: switching to a model that
covers fewer items than the active one takes those items out of search.
"""

from __future__ import annotations

from typing import Any

import psycopg

from glimpse.model_specs import Role

# Results per role; the primary keys hold one row per item and model (and kind).
_RESULTS: dict[Role, str] = {
    "captioner": "captions r WHERE true",
    "transcriber": "transcripts r WHERE true",
    "text": "embeddings r WHERE r.kind = 'text'",
    "visual": "embeddings r WHERE r.kind = 'visual'",
    "joint": "embeddings r WHERE r.kind = 'joint'",  # its image vectors
}


def items_covered(
    conn: psycopg.Connection[Any], role: Role, models: list[str] | None = None
) -> dict[str, int]:
    """Accepted items with a result of each model of ``role`` (of ``models``, if given);
    models without any are left out."""
    rows = conn.execute(
        "SELECT r.model, count(*) AS n FROM "
        + _RESULTS[role]
        + " AND (%(models)s::text[] IS NULL OR r.model = ANY(%(models)s::text[]))"
        " AND EXISTS (SELECT 1 FROM media m WHERE m.id = r.media_id AND m.status = 'accepted')"
        " GROUP BY r.model",
        {"models": models},
    ).fetchall()
    return {r["model"]: int(r["n"]) for r in rows}
