"""Tagging stored items: the ``labels`` stage of ``glimpse backfill``.

Tags come from stored visual vectors, so no model and no worker is needed: each page
of media (id order, from the job's cursor) is read with its vectors and tagged right
here, in one transaction; the cursor then advances like any backfill job's (resumable,
one process per job). Nothing goes through Kafka, so ``enqueued`` stays 0 and progress
counts tags written since the job began.

- ``--missing``: items without a tag of the active version of a set (a correction
  counts as a tag); ``--all``: every item in scope.
- ``--model NAME`` tags with set NAME only; without it, with every active set.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg

from glimpse.bus import OutboundMessage
from glimpse.db import label_sets, vectors
from glimpse.db.backfill_jobs import Stage
from glimpse.db.backlog import FIRST_ID, Mode, Scope
from glimpse.db.label_sets import STORED_VECTOR, Version
from glimpse.labels.head import LabelHead
from glimpse.labels.tagging import ActiveHeads, tags_for
from glimpse.storage import ObjectStore


class NothingToTag(Exception):
    """No active label set (or not the one asked for): the message says so."""


_WANTED = """
    m.bucket = %(bucket)s AND m.status = 'accepted' AND m.key LIKE %(prefix)s
    AND m.created_at >= %(since)s AND m.updated_at < %(cutoff)s
    AND (%(all)s OR EXISTS (
        SELECT 1 FROM unnest(%(sets)s::text[], %(versions)s::int[]) AS w(name, version)
        WHERE NOT EXISTS (SELECT 1 FROM media_labels l WHERE l.media_id = m.id
                          AND l.label_set = w.name
                          AND (l.version = w.version OR l.corrected))))
"""
_WITH_VECTOR = (
    "FROM media m JOIN embeddings e ON e.media_id = m.id AND e.model = %(visual)s "
    "AND e.kind = 'visual' WHERE "
)


@dataclass
class LabelWork:
    heads: list[tuple[Version, LabelHead]]
    visual: str  # the visual model whose stored vectors are read
    mode: Mode
    scope: Scope
    stage: Stage = "labels"
    model: str | None = None  # the set asked for; None: every active set
    tagged: int = 0  # items tagged by this object's pages so far

    def _params(self) -> dict[str, Any]:
        return {
            **self.scope.params(),
            "visual": self.visual,
            "all": self.mode == "all",
            "sets": [v.name for v, _ in self.heads],
            "versions": [v.version for v, _ in self.heads],
        }

    def page(
        self, conn: psycopg.Connection[Any], after: str | None, limit: int
    ) -> tuple[list[OutboundMessage], str | None]:
        start = uuid.UUID(after) if after else FIRST_ID
        with conn.transaction():
            rows = conn.execute(
                "SELECT m.id, " + STORED_VECTOR + " AS embedding " + _WITH_VECTOR + _WANTED
                + " AND m.id > %(after)s ORDER BY m.id LIMIT %(limit)s",
                {**self._params(), "after": start, "limit": limit},
            ).fetchall()  # fmt: skip
            if not rows:
                return [], None
            ids = [r["id"] for r in rows]
            found = np.array([r["embedding"] for r in rows], dtype=np.float32)
            label_sets.save_tags(conn, tags_for(self.heads, ids, found))
        self.tagged += len(ids)
        return [], str(ids[-1])

    def count(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(
            "SELECT count(*) AS n " + _WITH_VECTOR + _WANTED, self._params()
        ).fetchone()
        return int(row["n"]) if row else 0

    def done(self, conn: psycopg.Connection[Any], cursor: str | None, began: datetime) -> int:
        if cursor is None:
            return 0
        row = conn.execute(
            "SELECT count(DISTINCT media_id) AS n FROM media_labels "
            "WHERE label_set = ANY(%(sets)s) AND created_at >= %(began)s "
            "AND media_id <= %(cursor)s",
            {"sets": [v.name for v, _ in self.heads], "began": began,
             "cursor": uuid.UUID(cursor)},
        ).fetchone()  # fmt: skip
        return int(row["n"]) if row else 0


def label_work(
    conn: psycopg.Connection[Any], mode: Mode, scope: Scope, store: ObjectStore,
    name: str | None = None,
) -> LabelWork:  # fmt: skip
    """Tagging with the active version of set ``name`` (None: of every active set), from
    the stored vectors of the active visual model."""
    visual = vectors.active_model(conn, "visual")
    if visual is None:
        raise NothingToTag("no visual model is registered yet: start glimpse first")
    heads = ActiveHeads(store).refresh(conn, visual.model)
    if name is not None:
        heads = [(v, head) for v, head in heads if v.name == name]
    if not heads:
        which = f"label set {name!r} is" if name else "no label set is"
        raise NothingToTag(
            f"{which} not active with a head for {visual.model}: "
            "`glimpse labels activate NAME` (see `glimpse labels list`)"
        )
    return LabelWork(heads, visual.model, mode, scope, model=name)
