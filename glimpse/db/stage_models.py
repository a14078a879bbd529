"""The model registry: per role, which models exist, which one search serves, when a
worker last ran each, and how to load it.

Workers register the model they run when they start (captioner, transcriber here;
text and visual through ``vectors.register_model``, which builds the index first). The
first model of a role becomes the *active* one, what search serves; ``activate``
switches. Repair and backfill look for work of the model the workers *run*
(``current``): only a running worker can write it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from glimpse.model_specs import Role

# Activations are announced here (payload: the role), for whoever listens.
NOTIFY_CHANNEL = "glimpse_models"


def register(
    conn: psycopg.Connection[Any],
    role: Role,
    model: str,
    revision: str,
    spec: dict[str, Any] | None = None,
) -> None:
    """Record that a worker of ``role`` starts with ``model`` now; the first model of
    its role becomes the active one. Idempotent."""
    conn.execute(
        """
        INSERT INTO stage_models (role, model, revision, spec, active)
        VALUES (%(role)s, %(model)s, %(rev)s, %(spec)s,
                NOT EXISTS (SELECT 1 FROM stage_models WHERE role = %(role)s AND active))
        ON CONFLICT (role, model) DO UPDATE
        SET revision = EXCLUDED.revision, spec = EXCLUDED.spec, registered_at = now()
        """,
        {"role": role, "model": model, "rev": revision, "spec": Jsonb(spec or {})},
    )


@dataclass(frozen=True, slots=True)
class Running:
    model: str
    since: datetime  # when a worker last started with it


def current(conn: psycopg.Connection[Any], role: Role, model: str | None = None) -> Running | None:
    """The model the workers of ``role`` started with last (or ``model``, if a worker
    ever ran it); None if none did."""
    row = conn.execute(
        "SELECT model, registered_at FROM stage_models WHERE role = %(role)s "
        "AND (%(model)s::text IS NULL OR model = %(model)s) "
        "ORDER BY registered_at DESC LIMIT 1",
        {"role": role, "model": model},
    ).fetchone()
    return None if row is None else Running(str(row["model"]), row["registered_at"])


@dataclass(frozen=True, slots=True)
class Registered:
    role: Role
    model: str
    revision: str
    active: bool
    created_at: datetime  # first registered
    registered_at: datetime  # a worker last started with it
    spec: dict[str, Any] = field(default_factory=dict)


_COLUMNS = "role, model, revision, active, created_at, registered_at, spec"


def _registered(row: dict[str, Any]) -> Registered:
    return Registered(row["role"], row["model"], row["revision"], row["active"],
                      row["created_at"], row["registered_at"], dict(row["spec"]))  # fmt: skip


def active(conn: psycopg.Connection[Any], role: Role) -> Registered | None:
    """The model search serves for ``role``; None before any was registered."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM stage_models WHERE role = %(role)s AND active",
        {"role": role},
    ).fetchone()
    return None if row is None else _registered(row)


def registered(
    conn: psycopg.Connection[Any], role: Role | None = None, model: str | None = None
) -> list[Registered]:
    """Registry rows (of ``role``, of ``model``), by role, then first registered first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM stage_models "
        "WHERE (%(role)s::text IS NULL OR role = %(role)s) "
        "AND (%(model)s::text IS NULL OR model = %(model)s) "
        "ORDER BY role, created_at, model",
        {"role": role, "model": model},
    ).fetchall()
    return [_registered(r) for r in rows]


def lock_role(conn: psycopg.Connection[Any], role: Role) -> None:
    """Hold the role's rows until the transaction ends: one switch at a time."""
    conn.execute("SELECT 1 FROM stage_models WHERE role = %(role)s FOR UPDATE", {"role": role})


def set_active(conn: psycopg.Connection[Any], role: Role, model: str) -> None:
    """Make ``model`` the active one of ``role`` (registered). Call inside a transaction:
    two statements, since the one-active index is checked row by row."""
    conn.execute(
        "UPDATE stage_models SET active = false WHERE role = %(role)s AND active "
        "AND model <> %(model)s",
        {"role": role, "model": model},
    )
    updated = conn.execute(
        "UPDATE stage_models SET active = true WHERE role = %(role)s AND model = %(model)s",
        {"role": role, "model": model},
    )
    if updated.rowcount != 1:
        raise LookupError(f"{model} is not registered as a {role} model")
    conn.execute("SELECT pg_notify(%(channel)s, %(role)s)", {"channel": NOTIFY_CHANNEL,
                                                              "role": role})  # fmt: skip


def forget(conn: psycopg.Connection[Any], model: str) -> list[Role]:
    """Delete ``model``'s registry rows (vector_models' follow); the roles it had."""
    rows = conn.execute(
        "DELETE FROM stage_models WHERE model = %(model)s RETURNING role", {"model": model}
    ).fetchall()
    return [r["role"] for r in rows]
