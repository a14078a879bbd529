"""The connection pool hands out connections that work, even after Postgres dropped them."""

from __future__ import annotations

import psycopg

from glimpse.config import DatabaseSettings
from glimpse.db.pool import open_pool


def test_a_connection_dropped_while_idle_in_the_pool_is_replaced_before_use(
    postgres: str,
) -> None:
    settings = DatabaseSettings(url=postgres, pool_min=1, pool_max=1)
    with open_pool(settings, "pool-test") as pool:
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        # what a Postgres restart or an idle-connection timeout does to it
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid})

        with pool.connection() as conn:
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
            assert conn.info.backend_pid != pid
