"""Shared fixtures: a real embedded stack, a real in-memory broker, a real Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import RunningStack, free_port, private_settings, running_stack, share_model_cache


@pytest.fixture(scope="session", autouse=True)
def shared_model_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    share_model_cache(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One real stack for the integration tests that don't restart it."""
    with running_stack(private_settings(tmp_path_factory.mktemp("glimpse-home"))) as running:
        yield running


@pytest.fixture
def memory_broker(tmp_path: Path) -> Iterator[str]:
    """A real tansu broker with in-memory storage; yields its bootstrap address."""
    from glimpse.stack import broker
    from glimpse.stack.process import ManagedProcess

    port = free_port()
    process = ManagedProcess(broker.tansu_spec(port, tmp_path / "broker.log"))
    process.start()
    try:
        broker.wait_ready(f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Postgres + pgvector with glimpse's schema, for the whole session; yields
    its URL. Tests share it: each uses its own ids, keys or consumer group."""
    from glimpse.db.migrate import migrate
    from glimpse.stack import postgres as pg
    from glimpse.stack.pg_access import load_or_create
    from glimpse.stack.process import ManagedProcess

    home = tmp_path_factory.mktemp("postgres")
    port = free_port()
    creds, fresh = load_or_create(home / "postgres.json")
    spec = pg.postgres_spec(
        home / "data", home / "socket", port, home / "postgres.log", creds, fresh
    )
    process = ManagedProcess(spec)
    process.start()
    try:
        url = pg.wait_ready_and_set_up(port, home / "socket", creds, home / "pgpass")
        migrate(url)
        yield url
    finally:
        process.stop()
