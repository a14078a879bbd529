"""A private embedded Postgres for the benchmarks (as ``glimpse up`` runs it, on a
temporary directory and a free port), and fresh databases with glimpse's migrations."""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.rows import dict_row

from glimpse.db import vectors
from glimpse.db.migrate import migrate
from glimpse.stack import pg_access, postgres
from glimpse.stack.process import ManagedProcess


def free_port() -> int:
    """A free port below the ephemeral range (32768+)."""
    while True:
        port = random.randint(12000, 32700)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@dataclass(frozen=True)
class BenchPostgres:
    """A private embedded Postgres; the bench makes and drops databases as its superuser."""

    port: int
    creds: pg_access.PostgresCredentials

    def admin_url(self, database: str = "postgres") -> str:
        return pg_access.superuser_conninfo(self.port, self.creds, database)


@contextlib.contextmanager
def private_postgres(directory: Path) -> Iterator[BenchPostgres]:
    """The embedded Postgres as glimpse runs it (glimpse.stack.postgres), on a free port;
    stops the server on the way out."""
    port = free_port()
    creds, fresh = pg_access.load_or_create(directory / "postgres.json")
    spec = postgres.postgres_spec(
        directory / "pgdata", directory / "sockets", port, directory / "postgres.log", creds, fresh
    )
    process = ManagedProcess(spec)
    process.start()
    try:
        pg_access.set_up_roles(port, creds, timeout_s=60)
        yield BenchPostgres(port, creds)
    finally:
        process.stop()


def register_model(
    conn: psycopg.Connection[Any],
    vm: vectors.VectorModel,
    revision: str = "",
    spec: dict[str, Any] | None = None,
) -> None:
    """``vectors.register_model`` on a transaction-mode connection like ``connect``'s: it
    builds the index CONCURRENTLY, which needs autocommit."""
    conn.commit()
    conn.autocommit = True
    try:
        vectors.register_model(conn, vm, revision, spec)
    finally:
        conn.autocommit = False


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection configured like the pool's (dict rows, pgvector types)."""
    conn: psycopg.Connection[Any] = psycopg.connect(url, row_factory=dict_row)
    register_vector(conn)
    conn.commit()
    return conn


def fresh_database(pg: BenchPostgres, name: str) -> str:
    with psycopg.connect(pg.admin_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = pg.admin_url(name)
    migrate(url)
    return url


def drop_database(pg: BenchPostgres, name: str) -> None:
    with psycopg.connect(pg.admin_url(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
