"""Switching the model search serves, and removing a model that no longer serves.

    activate(conn, "text", NEW)   # one transaction; refused if NEW covers fewer items
    purge(conn, OLD)              # refused while OLD is active anywhere

Search follows an activation at once for vectors and full text (they read the registry
per query); the API's query embedder follows within ``search.model_check_s`` plus the
new model's load time, answering with the old one meanwhile (services/search_api).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from glimpse.db import coverage, stage_models, vectors
from glimpse.db.vectors import VectorKind
from glimpse.model_specs import Role


class SwitchRefused(RuntimeError):
    """The switch or purge would take items out of search, or names no such model."""


@dataclass(frozen=True, slots=True)
class Activated:
    role: Role
    model: str
    previous: str | None
    covered: int  # items the new model covers
    previously_covered: int  # items the previous one covered


def activate(
    conn: psycopg.Connection[Any], role: Role, model: str, force: bool = False
) -> Activated:
    """Make ``model`` what search serves for ``role``, in one transaction. Unless
    ``force``, refused when it covers fewer items than the active model (those would
    drop out of search): backfill it first."""
    with conn.transaction():
        stage_models.lock_role(conn, role)
        rows = {r.model: r for r in stage_models.registered(conn, role)}
        if model not in rows:
            known = ", ".join(rows) or "none"
            raise SwitchRefused(f"{model} is not a registered {role} model (registered: {known})")
        if role in VECTOR_ROLES and _index_state(conn, model, role) != "valid":
            raise SwitchRefused(f"the index of {model} is not built yet (a worker builds it "
                                "when it starts with the model); try again when it is")  # fmt: skip
        previous = next((r.model for r in rows.values() if r.active), None)
        counts = coverage.items_covered(conn, role, [m for m in (model, previous) if m])
        covered, before = counts.get(model, 0), counts.get(previous, 0) if previous else 0
        if previous != model and covered < before and not force:
            raise SwitchRefused(
                f"{model} covers {covered} items, {previous} covers {before}: {before - covered} "
                f"would drop out of search. Fill it first (glimpse backfill --stage "
                f"{_STAGE[role]} --model {model} --all) or pass --force"
            )
        stage_models.set_active(conn, role, model)
    return Activated(role, model, previous, covered, before)


_STAGE: dict[Role, str] = {
    "captioner": "caption",
    "transcriber": "transcribe",
    "text": "embed",
    "visual": "caption",
    "joint": "caption",
}


# The roles whose results are vectors, each its kind in ``embeddings``.
VECTOR_ROLES: tuple[VectorKind, ...] = ("text", "visual", "joint")


def _index_state(conn: psycopg.Connection[Any], model: str, role: Role) -> str:
    assert role in VECTOR_ROLES
    return vectors.index_state(conn, vectors.index_name(model, role))


@dataclass
class Purged:
    model: str
    roles: list[Role]
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows deleted


def purge(conn: psycopg.Connection[Any], model: str) -> Purged:
    """Delete everything of ``model``: its registry rows first (nothing can activate it
    any more), then its captions, transcripts and vectors, then its indexes, dropped
    CONCURRENTLY so no query or write waits. Refused while it is active in any role.
    ``conn`` must be in autocommit mode. Rows a worker still running it writes later
    are nobody's: stop those workers first."""
    if not conn.autocommit:
        raise ValueError("purge needs an autocommit connection (DROP INDEX CONCURRENTLY)")
    with conn.transaction():
        rows = stage_models.registered(conn, model=model)
        active = [r.role for r in rows if r.active]
        if active:
            raise SwitchRefused(
                f"{model} is the active {' and '.join(active)} model: activate another "
                "one first (glimpse models activate ROLE MODEL)"
            )
        roles = stage_models.forget(conn, model)
    purged = Purged(model, roles)
    for table in ("captions", "transcripts", "embeddings"):
        # one statement per table: it locks only this model's rows, which nothing reads
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} WHERE model = %(model)s").format(sql.Identifier(table)),
            {"model": model},
        )
        purged.rows[table] = deleted.rowcount
    for kind in VECTOR_ROLES:
        vectors.drop_index(conn, model, kind)
    return purged
