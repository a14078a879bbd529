"""Where the embedded stack keeps things under ``GLIMPSE_HOME``, and what it tells clients."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from glimpse.stack.credentials import write_private


@dataclass(frozen=True, slots=True)
class HomeLayout:
    home: Path

    @classmethod
    def at(cls, home: Path) -> HomeLayout:
        return cls(home.expanduser().resolve())

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def s3_credentials(self) -> Path:
        return self.home / "credentials" / "s3.json"

    @property
    def api_key(self) -> Path:
        """The admin API key made by the first `glimpse up` (mode 0600)."""
        return self.home / "credentials" / "api-key"

    @property
    def pg_credentials(self) -> Path:
        """Passwords of the embedded Postgres' superuser and service role (mode 0600)."""
        return self.home / "credentials" / "postgres.json"

    @property
    def pgpass(self) -> Path:
        """libpq password file of the service role, named in its URL (mode 0600)."""
        return self.home / "credentials" / "pgpass"

    @property
    def database_url(self) -> Path:
        """The database URL as the services use it, for clients of this home (mode 0600):
        an external one may hold a password, so endpoints.json shows it masked."""
        return self.home / "credentials" / "database-url"

    @property
    def s3_identities(self) -> Path:
        return self.home / "credentials" / "seaweed-identities.json"

    @property
    def media_store(self) -> Path:
        return self.home / "s3-media"

    @property
    def broker_store(self) -> Path:
        return self.home / "s3-broker"

    @property
    def pgdata(self) -> Path:
        return self.home / "postgres" / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.home / "postgres" / "socket"

    @property
    def endpoints_file(self) -> Path:
        return self.run / "endpoints.json"

    @property
    def parts_file(self) -> Path:
        """Each supervised part's state (starting, ready, restarting), for `glimpse status`."""
        return self.run / "parts.json"

    @property
    def pid_file(self) -> Path:
        return self.run / "up.pid"

    @property
    def lock_file(self) -> Path:
        return self.run / "up.lock"

    def ensure(self) -> None:
        """Logs, run state and credentials are for the owner only (also when a
        folder comes from an older version that made them readable by all)."""
        for path in (self.logs, self.run, self.s3_credentials.parent):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.chmod(0o700)
            for file in path.iterdir():
                if file.is_file():
                    file.chmod(file.stat().st_mode & 0o700)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What `glimpse status --json` prints and clients connect to. No secrets inside:
    the S3 keys stay in ``s3_credentials_file`` (mode 0600), ``database_url`` has its
    password masked (the real one is in ``HomeLayout.database_url``)."""

    s3_url: str
    s3_bucket: str
    s3_credentials_file: str | None
    api_key_file: str | None
    kafka_bootstrap: str
    database_url: str
    api_url: str
    home: str
    supervisor_pid: int
    ready: bool

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        write_private(tmp, json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> Endpoints | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None


def read_part_states(path: Path) -> dict[str, str]:
    """``{part: state}`` as the supervisor last wrote it; empty if there is none."""
    try:
        states = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {str(name): str(info.get("state")) for name, info in states.items()}
