"""Which model each worker role runs, as the workers say when they start.

Repair and backfill look for work of these models: a caption "missing" means missing
for the captioner the caption workers run, which is the one that can write it. The
model search serves is another matter (``vector_models.active``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

Role = Literal["captioner", "transcriber", "text", "visual"]


def register(
    conn: psycopg.Connection[Any],
    role: Literal["captioner", "transcriber"],
    model: str,
    revision: str,
) -> None:
    conn.execute(
        """
        INSERT INTO stage_models (role, model, revision) VALUES (%(role)s, %(model)s, %(rev)s)
        ON CONFLICT (role, model) DO UPDATE
        SET revision = EXCLUDED.revision, registered_at = now()
        """,
        {"role": role, "model": model, "rev": revision},
    )


@dataclass(frozen=True, slots=True)
class Running:
    model: str
    since: datetime  # when a worker last started with it


def current(conn: psycopg.Connection[Any], role: Role, model: str | None = None) -> Running | None:
    """The model the workers of ``role`` started with last (or ``model``, if a worker
    ever ran it); None if none did."""
    if role in ("text", "visual"):
        query = (
            "SELECT model, registered_at FROM vector_models WHERE kind = %(role)s "
            "AND (%(model)s::text IS NULL OR model = %(model)s) "
            "ORDER BY registered_at DESC LIMIT 1"
        )
    else:
        query = (
            "SELECT model, registered_at FROM stage_models WHERE role = %(role)s "
            "AND (%(model)s::text IS NULL OR model = %(model)s) "
            "ORDER BY registered_at DESC LIMIT 1"
        )
    row = conn.execute(query, {"role": role, "model": model}).fetchone()
    return None if row is None else Running(str(row["model"]), row["registered_at"])
