"""Applies the plain SQL files in ``migrations/`` once each, in order, under a lock."""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every glimpse process.
_LOCK_ID = 0x6C1B5E


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("glimpse.db") / "migrations"
    files = sorted(f.name for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(name, (folder / name).read_text()) for name in files]


def migrate(url: str) -> list[str]:
    """Apply pending migrations; returns the names applied now. Safe to run concurrently."""
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%(id)s)", {"id": _LOCK_ID})
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for name, sql in _migrations():
                if name in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (name) VALUES (%(name)s)", {"name": name}
                    )
                log.info("applied migration %s", name)
                applied_now.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%(id)s)", {"id": _LOCK_ID})
    return applied_now
