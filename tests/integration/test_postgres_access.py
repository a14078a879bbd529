"""The embedded Postgres lets no one in without a password, and the services' role
cannot do what only a superuser can (run programs, make superusers)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from harness import free_port

from glimpse.db.migrate import migrate
from glimpse.stack import pg_access, postgres
from glimpse.stack.process import ManagedProcess

pytestmark = pytest.mark.integration
NO_PASSFILE = "/nonexistent/pgpass"  # this test runner's own ~/.pgpass must not help


@dataclass
class Server:
    port: int
    socket_dir: Path
    creds: pg_access.PostgresCredentials
    url: str  # the services' URL


def start(home: Path) -> tuple[ManagedProcess, Server]:
    creds, fresh = pg_access.load_or_create(home / "credentials" / "postgres.json")
    port, socket_dir = free_port(), home / "socket"
    process = ManagedProcess(
        postgres.postgres_spec(
            home / "pgdata", socket_dir, port, home / "postgres.log", creds, fresh
        )
    )
    process.start()
    url = postgres.wait_ready_and_set_up(port, socket_dir, creds, home / "credentials" / "pgpass")
    return process, Server(port, socket_dir, creds, url)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    process, running = start(tmp_path_factory.mktemp("pg"))
    try:
        migrate(running.url)
        yield running
    finally:
        process.stop()


def refused(**params: object) -> str:
    with pytest.raises(psycopg.OperationalError) as refusal:
        psycopg.connect(connect_timeout=5, **params).close()
    return str(refusal.value)


@pytest.mark.parametrize("user", ["postgres", "glimpse"])
def test_no_password_is_refused_over_tcp_and_the_socket(server: Server, user: str) -> None:
    for host in ("127.0.0.1", str(server.socket_dir)):
        error = refused(host=host, port=server.port, user=user, dbname="glimpse",
                        passfile=NO_PASSFILE)  # fmt: skip
        assert "no password supplied" in error
        error = refused(host=host, port=server.port, user=user, dbname="glimpse",
                        password="guess", passfile=NO_PASSFILE)  # fmt: skip
        assert "password authentication failed" in error


def test_psql_without_a_password_is_refused(server: Server) -> None:
    psql = Path(postgres._bin("psql"))
    for host in ("127.0.0.1", str(server.socket_dir)):
        done = subprocess.run(
            [str(psql), "-w", "-h", host, "-p", str(server.port), "-U", "postgres", "-c",
             "SELECT 1", "glimpse"],
            capture_output=True, text=True, check=False, env={"PGPASSFILE": NO_PASSFILE},
        )  # fmt: skip
        assert done.returncode != 0
        assert "password" in done.stderr
    # the services' URL names its password file: psql takes it as it is
    done = subprocess.run(
        [str(psql), "-w", "-tA", "-c", "SELECT current_user", server.url],
        capture_output=True, text=True, check=False, env={"PGPASSFILE": NO_PASSFILE},
    )  # fmt: skip
    assert done.stdout.strip() == "glimpse", done.stderr


def test_the_services_role_is_not_a_superuser(server: Server) -> None:
    with psycopg.connect(server.url, autocommit=True) as conn:
        assert "password" not in server.url.split("?")[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY (SELECT 1) TO PROGRAM 'touch /tmp/glimpse-pwned'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE ROLE intruder SUPERUSER LOGIN PASSWORD 'x'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER ROLE glimpse SUPERUSER")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pg_read_file('postgresql.conf')")
        # …and it owns what the migrations made, so the pipeline works as before
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'media'")
        assert owner.fetchone() == ("glimpse",)
        assert conn.execute("SELECT '[1,2]'::vector(2)").fetchone()


def test_the_services_url_works_over_the_socket_too(server: Server) -> None:
    url = server.url.replace("127.0.0.1", "").replace("?", f"?host={server.socket_dir}&")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("glimpse",)


def test_a_data_directory_from_the_trust_era_is_upgraded(tmp_path: Path) -> None:
    """Older versions ran initdb --auth=trust and migrated as the superuser."""
    pgdata, socket_dir = tmp_path / "pgdata", tmp_path / "socket"
    user = postgres._system_user()
    for directory in (pgdata, socket_dir):
        directory.mkdir(mode=0o700)
        if user:
            postgres._grant_access(directory, user)
    subprocess.run(
        [postgres._bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust"],
        check=True, capture_output=True, user=user,
    )  # fmt: skip
    port = free_port()
    old = ManagedProcess(
        postgres.ProcessSpec(
            "old-postgres",
            [postgres._bin("postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
             "-k", str(socket_dir)],
            tmp_path / "old.log",
            user=user,
        )
    )  # fmt: skip
    old.start()
    try:
        superuser = f"postgresql://postgres@127.0.0.1:{port}"
        with pg_access._connect(f"{superuser}/postgres", 30) as conn:
            conn.execute("CREATE DATABASE glimpse")
        migrate(f"{superuser}/glimpse")
    finally:
        old.stop()

    process, server = start(tmp_path)
    try:
        assert "no password supplied" in refused(
            host="127.0.0.1", port=server.port, user="postgres", passfile=NO_PASSFILE
        )
        assert (pgdata / "pg_hba.conf").read_text() == pg_access.HBA_CONF
        migrate(server.url)  # nothing left to apply, and allowed to say so
        with psycopg.connect(server.url) as conn:
            conn.execute("INSERT INTO api_keys (prefix, hash, name) VALUES ('p', 'h', 'upgrade')")
            owners = conn.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        assert owners == [("glimpse",)]
    finally:
        process.stop()
