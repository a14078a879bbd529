"""Statements one after another on one connection, or side by side on pooled ones."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from glimpse.config import DatabaseSettings
from glimpse.db.pool import open_pool
from glimpse.db.statements import InTurn, SideBySide


def backend_pid(conn: psycopg.Connection[Any]) -> int:
    return int(conn.info.backend_pid)


@pytest.fixture
def pool(postgres: str) -> Iterator[ConnectionPool[psycopg.Connection[Any]]]:
    with open_pool(DatabaseSettings(url=postgres, pool_min=1, pool_max=2), "statements") as p:
        yield p


def test_side_by_side_statements_run_at_once_on_connections_of_their_own(
    pool: ConnectionPool[psycopg.Connection[Any]],
) -> None:
    # Each statement waits inside for the other: only statements running at once meet.
    both_running = threading.Barrier(2, timeout=30)

    def meet(conn: psycopg.Connection[Any]) -> int:
        pid = backend_pid(conn)
        both_running.wait()
        return pid

    with ThreadPoolExecutor(2) as threads:
        statements = SideBySide(pool, threads)
        first, second = statements.submit(meet), statements.submit(meet)

        assert first.result() != second.result()


def test_more_statements_than_connections_wait_their_turn_and_all_answer(
    pool: ConnectionPool[psycopg.Connection[Any]],
) -> None:
    def sleep_then_answer(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT 7 AS seven, pg_sleep(0.05)").fetchone()
        assert row is not None
        return int(row["seven"])

    with ThreadPoolExecutor(6) as threads:  # six statements, two connections
        statements = SideBySide(pool, threads)
        futures = [statements.submit(sleep_then_answer) for _ in range(6)]

        assert [f.result(timeout=30) for f in futures] == [7] * 6


def test_a_failed_statement_raises_from_its_result_and_its_connection_is_reused(
    pool: ConnectionPool[psycopg.Connection[Any]],
) -> None:
    with ThreadPoolExecutor(1) as threads:
        statements = SideBySide(pool, threads)
        failed = statements.submit(lambda conn: conn.execute("SELECT 1/0"))

        with pytest.raises(psycopg.errors.DivisionByZero):
            failed.result()
        # rolled back on its way into the pool: the next statement runs normally
        after = statements.submit(lambda conn: conn.execute("SELECT 2 AS two").fetchone())
        assert after.result() == {"two": 2}


def test_in_turn_runs_each_statement_when_submitted_on_the_one_connection(
    postgres: str,
) -> None:
    with psycopg.connect(postgres) as conn:
        statements = InTurn(conn)
        ran = statements.submit(backend_pid)

        assert ran.done() and ran.result() == conn.info.backend_pid
        failed = statements.submit(lambda c: c.execute("SELECT 1/0"))
        assert isinstance(failed.exception(), psycopg.errors.DivisionByZero)
