"""A psycopg connection pool with pgvector types registered on every connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from glimpse.config import DatabaseSettings


def _configure(conn: psycopg.Connection[object]) -> None:
    # The vector extension exists after the first migration; before that there is
    # nothing to register (the migration runner uses its own connection).
    if conn.execute("SELECT 1 FROM pg_type WHERE typname = 'vector'").fetchone():
        register_vector(conn)
    conn.commit()


def open_pool(database: DatabaseSettings, name: str) -> ConnectionPool[psycopg.Connection[object]]:
    """Open a pool; the caller closes it (``with`` or ``pool.close()``)."""
    assert database.url, "database URL is not configured"
    pool: ConnectionPool[psycopg.Connection[object]] = ConnectionPool(
        database.url,
        min_size=database.pool_min,
        max_size=database.pool_max,
        kwargs={
            "application_name": f"glimpse-{name}",
            "row_factory": dict_row,
            "connect_timeout": 5,
        },
        configure=_configure,
        # A connection that died in the pool (Postgres restarted, an idle timeout) is
        # replaced before a caller gets it, instead of failing the caller's first query.
        check=ConnectionPool.check_connection,
        open=True,
        # Workers must keep running while Postgres restarts: don't fail at start.
        timeout=10,
        # psycopg_pool retries a failed connect after 1, 2, 4, 8 … s until this much time
        # has passed; a short bound makes the next checkout start a fresh attempt, so a
        # Postgres back after a crash is used within about a second, not after up to 16 s.
        reconnect_timeout=3.0,
        name=name,
    )
    return pool


@contextmanager
def autocommit(
    pool: ConnectionPool[psycopg.Connection[Any]],
) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection in autocommit mode, for statements that refuse a transaction
    block (CREATE INDEX CONCURRENTLY); it goes back to the pool in transaction mode."""
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            if not conn.closed:
                conn.autocommit = False
