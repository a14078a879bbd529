"""API keys: random secrets shown once, stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

KEY_PREFIX = "glk_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _hash(key: str) -> str:
    # The secret is 32 random bytes: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(key.encode()).hexdigest()


def create(conn: psycopg.Connection[Any], name: str) -> tuple[ApiKey, str]:
    """A new key; the plain text is returned once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        "INSERT INTO api_keys (name, prefix, hash) VALUES (%(name)s, %(prefix)s, %(hash)s) "
        "RETURNING id, name, prefix, created_at, last_used_at, revoked_at",
        {"name": name, "prefix": key[:12], "hash": _hash(key)},
    ).fetchone()
    assert row is not None
    return ApiKey(**row), key


def verify(conn: psycopg.Connection[Any], key: str) -> ApiKey | None:
    """The live key matching ``key`` (and note its use), or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = conn.execute(
        "UPDATE api_keys SET last_used_at = now() "
        "WHERE hash = %(hash)s AND revoked_at IS NULL "
        "RETURNING id, name, prefix, created_at, last_used_at, revoked_at",
        {"hash": _hash(key)},
    ).fetchone()
    return ApiKey(**row) if row else None


def list_all(conn: psycopg.Connection[Any]) -> list[ApiKey]:
    rows = conn.execute(
        "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys "
        "ORDER BY created_at"
    ).fetchall()
    return [ApiKey(**r) for r in rows]


def revoke(conn: psycopg.Connection[Any], id_or_prefix: str) -> int:
    """Revoke by id or by the prefix shown in listings; returns how many were revoked."""
    try:
        key_id: uuid.UUID | None = uuid.UUID(id_or_prefix)
    except ValueError:
        key_id = None
    result = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL "
        "AND (id = %(id)s OR prefix = %(prefix)s)",
        {"id": key_id, "prefix": id_or_prefix},
    )
    return result.rowcount
