"""Where independent statements run: one after another on one connection, or side by
side, each on its own pooled connection.

A search asks Postgres several independent questions (text vectors, full text, image
vectors, the library's typical scores). One after another, its latency is their sum;
side by side, about the slowest one's. Callers submit each statement and read the
results when they need them::

    statements = SideBySide(pool, threads)
    words = statements.submit(lambda conn: keyword(conn, ...))
    nearby = statements.submit(lambda conn: nearest(conn, ...))
    fuse(nearby.result(), words.result())
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

R = TypeVar("R")
Statement = Callable[[psycopg.Connection[Any]], R]


class Statements(Protocol):
    def submit(self, statement: Statement[R]) -> Future[R]:
        """Start ``statement`` (or run it); its result or error comes from the future."""
        ...


class InTurn:
    """Every statement on one connection, run when submitted, in the caller's
    transaction (tests, benchmarks and tools that hold a connection)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def submit(self, statement: Statement[R]) -> Future[R]:
        future: Future[R] = Future()
        try:
            future.set_result(statement(self.conn))
        except Exception as exc:  # handed to whoever reads the result, as a thread would
            future.set_exception(exc)
        return future


class SideBySide:
    """Each statement on a pooled connection of its own, in a thread of ``threads``,
    committed when it is done (its SET LOCAL settings end with it).

    No statement waits for another while it holds a connection, so a pool smaller than
    the statements in flight only makes some wait their turn, it cannot deadlock."""

    def __init__(self, pool: ConnectionPool[psycopg.Connection[Any]], threads: Executor) -> None:
        self.pool = pool
        self.threads = threads

    def submit(self, statement: Statement[R]) -> Future[R]:
        return self.threads.submit(self._run, statement)

    def _run(self, statement: Statement[R]) -> R:
        with self.pool.connection() as conn:
            return statement(conn)
