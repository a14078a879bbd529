"""SQL for label sets: sets and their versions, the tags they wrote, corrections."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from glimpse.db.backlog import like_prefix
from glimpse.db.vectors import VectorModel


@dataclass(frozen=True, slots=True)
class Version:
    name: str
    version: int
    visual_model: str
    classes: list[str]
    metrics: dict[str, Any]
    examples: int
    artifact_key: str
    artifact_sha256: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LabelSet:
    name: str
    active_version: int | None
    unsure_below: float
    created_at: datetime
    latest: Version | None  # the newest version
    active: Version | None  # the active version


@dataclass(frozen=True, slots=True)
class Tag:
    media_id: uuid.UUID
    label_set: str
    version: int
    label: str
    confidence: float
    alternatives: list[tuple[str, float]]


_COLUMNS = ("name", "version", "visual_model", "classes", "metrics", "examples",
            "artifact_key", "artifact_sha256", "created_at")  # fmt: skip
_VERSION = ", ".join(f"v.{c}" for c in _COLUMNS)


def _version(row: dict[str, Any], prefix: str = "") -> Version | None:
    if row[f"{prefix}version"] is None:
        return None
    return Version(*(row[f"{prefix}{c}"] for c in _COLUMNS))


def next_version(conn: psycopg.Connection[Any], name: str, unsure_below: float) -> int:
    """Create the set if new (locked for this transaction either way); its next version."""
    conn.execute(
        "INSERT INTO label_sets (name, unsure_below) VALUES (%(name)s, %(unsure)s) "
        "ON CONFLICT (name) DO NOTHING",
        {"name": name, "unsure": unsure_below},
    )
    conn.execute("SELECT 1 FROM label_sets WHERE name = %(name)s FOR UPDATE", {"name": name})
    row = conn.execute(
        "SELECT coalesce(max(version), 0) + 1 AS v FROM label_set_versions WHERE name = %(name)s",
        {"name": name},
    ).fetchone()
    assert row is not None
    return int(row["v"])


def add_version(conn: psycopg.Connection[Any], v: Version) -> None:
    conn.execute(
        "INSERT INTO label_set_versions (name, version, visual_model, classes, metrics, "
        "examples, artifact_key, artifact_sha256) VALUES (%(name)s, %(version)s, "
        "%(visual_model)s, %(classes)s, %(metrics)s, %(examples)s, %(key)s, %(sha)s)",
        {"name": v.name, "version": v.version, "visual_model": v.visual_model,
         "classes": Jsonb(v.classes), "metrics": Jsonb(v.metrics), "examples": v.examples,
         "key": v.artifact_key, "sha": v.artifact_sha256},
    )  # fmt: skip


def versions(conn: psycopg.Connection[Any], name: str) -> list[Version]:
    rows = conn.execute(
        f"SELECT {_VERSION} FROM label_set_versions v WHERE v.name = %(name)s ORDER BY v.version",
        {"name": name},
    ).fetchall()
    return [v for v in map(_version, rows) if v]


def version(conn: psycopg.Connection[Any], name: str, number: int) -> Version | None:
    row = conn.execute(
        f"SELECT {_VERSION} FROM label_set_versions v "
        "WHERE v.name = %(name)s AND v.version = %(version)s",
        {"name": name, "version": number},
    ).fetchone()
    return _version(row) if row else None


_SETS = (
    "SELECT s.name AS set_name, s.active_version, s.unsure_below, "
    "s.created_at AS set_created_at, "
    + ", ".join(f"l.{c} AS l_{c}, a.{c} AS a_{c}" for c in _COLUMNS)
    + """
FROM label_sets s
LEFT JOIN LATERAL (SELECT * FROM label_set_versions WHERE name = s.name
                   ORDER BY version DESC LIMIT 1) l ON true
LEFT JOIN label_set_versions a ON a.name = s.name AND a.version = s.active_version
"""
)


def _set(row: dict[str, Any]) -> LabelSet:
    return LabelSet(row["set_name"], row["active_version"], float(row["unsure_below"]),
                    row["set_created_at"], _version(row, "l_"), _version(row, "a_"))  # fmt: skip


def all_sets(conn: psycopg.Connection[Any]) -> list[LabelSet]:
    return [_set(r) for r in conn.execute(_SETS + " ORDER BY s.name").fetchall()]


def get(conn: psycopg.Connection[Any], name: str) -> LabelSet | None:
    row = conn.execute(_SETS + " WHERE s.name = %(name)s", {"name": name}).fetchone()
    return _set(row) if row else None


def active_versions(conn: psycopg.Connection[Any]) -> list[Version]:
    """The active version of every active set (what tags new images)."""
    rows = conn.execute(
        f"SELECT {_VERSION} FROM label_sets s JOIN label_set_versions v "
        "ON v.name = s.name AND v.version = s.active_version ORDER BY v.name"
    ).fetchall()
    return [v for v in map(_version, rows) if v]


def activate(
    conn: psycopg.Connection[Any], name: str, number: int | None, unsure_below: float | None
) -> None:
    conn.execute(
        "UPDATE label_sets SET active_version = %(v)s, "
        "unsure_below = coalesce(%(unsure)s, unsure_below) WHERE name = %(name)s",
        {"name": name, "v": number, "unsure": unsure_below},
    )


def delete(conn: psycopg.Connection[Any], name: str) -> bool:
    """The set, its versions' rows, its tags and corrections."""
    return conn.execute("DELETE FROM label_sets WHERE name = %(name)s", {"name": name}).rowcount > 0


def save_tags(conn: psycopg.Connection[Any], tags: Sequence[Tag]) -> None:
    """Upsert one tag per (item, set); a person's correction stays."""
    conn.cursor().executemany(
        """
        INSERT INTO media_labels (media_id, label_set, version, label, confidence, alternatives)
        VALUES (%(media_id)s, %(set)s, %(version)s, %(label)s, %(confidence)s, %(alt)s)
        ON CONFLICT (media_id, label_set) DO UPDATE
        SET version = EXCLUDED.version, label = EXCLUDED.label,
            confidence = EXCLUDED.confidence, alternatives = EXCLUDED.alternatives,
            created_at = now()
        WHERE NOT media_labels.corrected
        """,
        [
            {"media_id": t.media_id, "set": t.label_set, "version": t.version, "label": t.label,
             "confidence": t.confidence,
             "alt": Jsonb([[label, round(p, 5)] for label, p in t.alternatives])}
            for t in tags
        ],
    )  # fmt: skip


def correct(
    conn: psycopg.Connection[Any], name: str, version: int, media_id: uuid.UUID, label: str
) -> None:
    """Record a person's label for an item: a training example, and its tag from now on."""
    params = {"set": name, "id": media_id, "label": label, "version": version}
    conn.execute(
        "INSERT INTO label_corrections (label_set, media_id, label) "
        "VALUES (%(set)s, %(id)s, %(label)s) "
        "ON CONFLICT (label_set, media_id) DO UPDATE SET label = EXCLUDED.label, "
        "created_at = now()",
        params,
    )
    conn.execute(
        "INSERT INTO media_labels (media_id, label_set, version, label, confidence, corrected) "
        "VALUES (%(id)s, %(set)s, %(version)s, %(label)s, 1, true) "
        "ON CONFLICT (media_id, label_set) DO UPDATE SET label = EXCLUDED.label, "
        "confidence = 1, corrected = true, alternatives = '[]', created_at = now()",
        params,
    )


@dataclass(frozen=True, slots=True)
class Unsure:
    media_id: uuid.UUID
    key: str
    label: str
    confidence: float
    alternatives: list[tuple[str, float]]


def unsure(
    conn: psycopg.Connection[Any], name: str, limit: int, prefix: str | None = None
) -> tuple[list[Unsure], int]:
    """The set's least confident tags below its threshold (not corrected, live items,
    keys under ``prefix`` if given), least confident first, and how many there are."""
    where = (
        "FROM media_labels l JOIN label_sets s ON s.name = l.label_set "
        "JOIN media m ON m.id = l.media_id AND m.status = 'accepted' "
        "WHERE l.label_set = %(set)s AND NOT l.corrected AND l.confidence < s.unsure_below "
        "AND (%(like)s::text IS NULL OR m.key LIKE %(like)s)"
    )
    like = None if prefix is None else like_prefix(prefix)
    params = {"set": name, "limit": limit, "like": like}
    rows = conn.execute(
        "SELECT l.media_id, m.key, l.label, l.confidence, l.alternatives "
        + where
        + " ORDER BY l.confidence, m.key LIMIT %(limit)s",
        params,
    ).fetchall()
    total = conn.execute("SELECT count(*) AS n " + where, params).fetchone()
    found = [
        Unsure(r["media_id"], r["key"], r["label"], float(r["confidence"]),
               [(str(a), float(p)) for a, p in r["alternatives"]])
        for r in rows
    ]  # fmt: skip
    return found, int(total["n"]) if total else 0


def counts(conn: psycopg.Connection[Any], name: str) -> dict[str, int]:
    """Items tagged by the set, unsure among them, corrections."""
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM media_labels WHERE label_set = %(set)s) AS tagged,
               (SELECT count(*) FROM media_labels l JOIN label_sets s ON s.name = l.label_set
                WHERE l.label_set = %(set)s AND NOT l.corrected
                  AND l.confidence < s.unsure_below) AS unsure,
               (SELECT count(*) FROM label_corrections WHERE label_set = %(set)s) AS corrected
        """,
        {"set": name},
    ).fetchone()
    assert row is not None
    return {k: int(v) for k, v in row.items()}


def corrections(conn: psycopg.Connection[Any], name: str) -> list[tuple[uuid.UUID, str, str]]:
    """(media id, key, label) of every correction of the set."""
    rows = conn.execute(
        "SELECT c.media_id, m.key, c.label FROM label_corrections c "
        "JOIN media m ON m.id = c.media_id WHERE c.label_set = %(set)s ORDER BY m.key",
        {"set": name},
    ).fetchall()
    return [(r["media_id"], r["key"], r["label"]) for r in rows]


# A stored vector as a plain real[]: read the same on any connection, whether or not
# pgvector's types are registered on it (the CLI's are not).
STORED_VECTOR = "e.embedding::vector::real[]"


def stored_vectors(
    conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID], vm: VectorModel
) -> dict[uuid.UUID, np.ndarray]:
    """The stored visual vectors of accepted items among ``ids``."""
    rows = conn.execute(
        f"SELECT e.media_id, {STORED_VECTOR} AS embedding FROM embeddings e "
        "JOIN media m ON m.id = e.media_id "
        "WHERE e.media_id = ANY(%(ids)s) AND e.model = %(model)s AND e.kind = %(kind)s "
        "AND m.status = 'accepted'",
        {"ids": list(ids), "model": vm.model, "kind": vm.kind},
    ).fetchall()
    return {r["media_id"]: np.array(r["embedding"], dtype=np.float32) for r in rows}
