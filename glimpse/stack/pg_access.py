"""Who may connect to the embedded Postgres, and as whom.

Two roles, each with a generated password kept in a 0600 file: the bootstrap
superuser ``postgres`` (setup only: roles, the database, the ``vector`` extension)
and ``glimpse``, a plain role that owns the glimpse database and is the only one
the services use. Every connection, TCP or Unix socket, must give a password
(scram-sha-256); data directories made by older versions with ``--auth=trust``
are upgraded on the next start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from glimpse.stack.credentials import write_private

SUPERUSER = "postgres"
SERVICE_ROLE = "glimpse"
DB_NAME = "glimpse"

#: the whole pg_hba.conf: a password for everyone, over the socket and loopback TCP
HBA_CONF = (
    "# written by glimpse at every start: every connection needs a password\n"
    "local all all scram-sha-256\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n"
)


@dataclass(frozen=True, slots=True)
class PostgresCredentials:
    superuser_password: str
    password: str  # of SERVICE_ROLE


def load_or_create(path: Path) -> tuple[PostgresCredentials, bool]:
    """The passwords stored at ``path`` and whether they were made just now."""
    if path.exists():
        data = json.loads(path.read_text())
        return PostgresCredentials(data["superuser_password"], data["password"]), False
    creds = PostgresCredentials(secrets.token_urlsafe(30), secrets.token_urlsafe(30))
    write_private(
        path,
        json.dumps({"superuser_password": creds.superuser_password, "password": creds.password}),
    )
    return creds, True


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 secret Postgres stores for ``password`` (RFC 5802/7677).

    Roles get this, never the password: a statement that fails is written to the
    server log with its text.
    """
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def alter_superuser_sql(creds: PostgresCredentials) -> str:
    """For single-user mode, which reads one statement per line from stdin."""
    return f"ALTER ROLE {SUPERUSER} WITH PASSWORD '{scram_verifier(creds.superuser_password)}'\n"


def write_pgpass(path: Path, port: int, socket_dir: Path, creds: PostgresCredentials) -> None:
    """A libpq password file for the service role (libpq ignores it unless it is 0600).
    Over a Unix socket libpq looks the socket folder up as the host name."""
    socket_host = str(socket_dir).replace("\\", "\\\\").replace(":", "\\:")
    hosts = ("127.0.0.1", "localhost", socket_host)
    lines = [f"{host}:{port}:*:{SERVICE_ROLE}:{creds.password}" for host in hosts]
    write_private(path, "\n".join(lines) + "\n")


def service_url(port: int, passfile: Path) -> str:
    """The URL the services use: the password stays in ``passfile``, out of the URL."""
    return f"postgresql://{SERVICE_ROLE}@127.0.0.1:{port}/{DB_NAME}?passfile={passfile}"


def superuser_conninfo(port: int, creds: PostgresCredentials, database: str = "postgres") -> str:
    return make_conninfo(
        host="127.0.0.1",
        port=port,
        user=SUPERUSER,
        password=creds.superuser_password,
        dbname=database,
    )


def set_up_roles(port: int, creds: PostgresCredentials, timeout_s: float = 30.0) -> None:
    """As the superuser: the service role, its database and the extensions the
    migrations need; objects made by older versions (as the superuser) handed over."""
    with _connect(superuser_conninfo(port, creds), timeout_s) as conn:
        role = sql.Identifier(SERVICE_ROLE)
        verifier = sql.Literal(scram_verifier(creds.password))
        exists = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %(name)s", {"name": SERVICE_ROLE}
        ).fetchone()
        # ALTER as well: a role from a test or an older setup loses any extra powers
        verb = sql.SQL("ALTER" if exists else "CREATE")
        conn.execute(
            sql.SQL(
                "{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                " NOBYPASSRLS PASSWORD {}"
            ).format(verb, role, verifier)
        )
        db = sql.Identifier(DB_NAME)
        if conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": DB_NAME}
        ).fetchone():
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, role))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role))
    with _connect(superuser_conninfo(port, creds, DB_NAME), timeout_s) as conn:
        # Only a superuser may create it (pgvector is not a trusted extension); the
        # migration's CREATE EXTENSION IF NOT EXISTS then finds it and does nothing.
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        _hand_over_relations(conn)


def _hand_over_relations(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Tables, views and free sequences in ``public`` that the superuser made (data
    from versions that migrated as ``postgres``) now belong to the service role.
    Sequences of serial/identity columns follow their table; extension objects stay."""
    rows = conn.execute(
        """
        SELECT c.relname
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND c.relowner <> %(role)s::regrole
          AND NOT EXISTS (
            SELECT 1 FROM pg_depend d
            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
              AND d.deptype IN ('e', 'a', 'i')
          )
        """,
        {"role": SERVICE_ROLE},
    ).fetchall()
    for (name,) in rows:
        conn.execute(
            sql.SQL("ALTER TABLE public.{} OWNER TO {}").format(
                sql.Identifier(str(name)), sql.Identifier(SERVICE_ROLE)
            )
        )


def _connect(conninfo: str, timeout_s: float) -> psycopg.Connection[tuple[object, ...]]:
    """Connect, retrying while the server is still starting."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return psycopg.connect(conninfo, autocommit=True, connect_timeout=2)
        except psycopg.OperationalError as exc:
            if "authentication failed" in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
