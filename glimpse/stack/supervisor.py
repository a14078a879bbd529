"""The embedded default stack: start every part in order, supervise, stop in reverse.

Order (DESIGN.md): S3 store for the broker → tansu (durable on that store) → topics
→ media S3 store whose filer notifies tansu → Postgres → migrations → reconcile →
workers → API. Parts given as external endpoints in the settings are not started;
the same code then runs against them (the production path).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg
from psycopg.rows import dict_row

from glimpse.bus import all_topics, ensure_topics, make_producer
from glimpse.config import Settings
from glimpse.db import keys
from glimpse.db.migrate import migrate
from glimpse.db.pool import open_pool
from glimpse.reconcile import ReconcileReport, reconcile
from glimpse.redact import redact_url
from glimpse.stack import broker, pg_access, postgres, seaweed
from glimpse.stack.credentials import (
    S3Credentials,
    load_or_create,
    write_private,
    write_seaweed_identities,
)
from glimpse.stack.layout import Endpoints, HomeLayout
from glimpse.stack.process import ManagedProcess, ProcessSpec
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)
T = TypeVar("T")

BROKER_BUCKET = "glimpse-broker"
#: restart backoff for crashed parts: 1, 2, 4 … 30 s; reset after a minute of health
RESTART_BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0

Progress = Callable[[str], None]


@dataclass
class Part:
    """One supervised process, how to tell it is ready, and what to do after a restart."""

    process: ManagedProcess
    wait_ready: Callable[[], None]
    after_restart: Callable[[], None] | None = None
    restarts: int = 0
    restart_at: float | None = None

    @property
    def name(self) -> str:
        return self.process.spec.name


@dataclass
class EmbeddedStack:
    settings: Settings
    progress: Progress = field(default=lambda message: None)

    def __post_init__(self) -> None:
        self.layout = HomeLayout.at(self.settings.home)
        self.parts: list[Part] = []
        self._s3_creds: S3Credentials | None = None
        self._reconcile_lock = threading.Lock()
        self.reconcile_reports: list[ReconcileReport] = []
        self._stopping = threading.Event()

    # --- start ---------------------------------------------------------------------
    def start(self) -> Settings:
        """Start everything; returns the settings with every endpoint filled in."""
        self.layout.ensure()
        s = self.settings.model_copy(deep=True)
        s.home = self.layout.home
        ports = s.stack
        if not s.kafka.bootstrap or not s.s3.endpoint:
            self._s3_creds = load_or_create(self.layout.s3_credentials)
            write_seaweed_identities(self.layout.s3_identities, self._s3_creds)

        if not s.kafka.bootstrap:
            store_url = f"http://127.0.0.1:{ports.broker_store_s3_port}"
            self._start_weed(
                "s3-broker",
                self.layout.broker_store,
                BROKER_BUCKET,
                seaweed.broker_store_ports(ports),
            )
            s.kafka.bootstrap = f"127.0.0.1:{ports.kafka_port}"
            assert self._s3_creds
            bootstrap = s.kafka.bootstrap
            self._start(
                Part(
                    ManagedProcess(
                        broker.tansu_spec(
                            ports.kafka_port,
                            self.layout.logs / "broker.log",
                            store_url,
                            BROKER_BUCKET,
                            self._s3_creds,
                        )
                    ),
                    wait_ready=lambda: broker.wait_ready(bootstrap),
                    after_restart=lambda: self._reconcile_soon(s),
                ),
                "Kafka broker (tansu)",
            )
        self._step("Kafka topics", lambda: ensure_topics(s.kafka, all_topics(s.kafka)))

        if not s.s3.endpoint:
            workdir = self.layout.media_store
            workdir.mkdir(parents=True, exist_ok=True)
            (workdir / "notification.toml").write_text(
                seaweed.notification_toml(s.kafka.bootstrap, s.kafka.objects_topic)
            )
            self._start_weed(
                "s3-media",
                workdir,
                s.s3.bucket,
                seaweed.media_store_ports(ports),
                after_restart=lambda: self._reconcile_soon(s),
            )
            assert self._s3_creds
            s.s3.endpoint = f"http://127.0.0.1:{ports.s3_port}"
            s.s3.access_key, s.s3.secret_key = self._s3_creds.access_key, self._s3_creds.secret_key

        if not s.database.url:
            pg_creds, fresh = pg_access.load_or_create(self.layout.pg_credentials)
            pg = postgres.postgres_spec(
                self.layout.pgdata,
                self.layout.pg_socket_dir,
                ports.postgres_port,
                self.layout.logs / "postgres.log",
                pg_creds,
                fresh,
            )
            self._start(Part(ManagedProcess(pg), wait_ready=lambda: None), "Postgres + pgvector")
            # the services get a plain role; the superuser's password stays with `up`
            s.database.url = self._step_result(
                "database",
                lambda: postgres.wait_ready_and_set_up(
                    ports.postgres_port, self.layout.pg_socket_dir, pg_creds, self.layout.pgpass
                ),
            )
        url = s.database.url
        self._step("migrations", lambda: migrate(url))
        self._ensure_admin_key(url)
        self.resolved = s
        report = self._step_result("reconcile", lambda: self.reconcile(s))
        self.progress(
            f"  reconcile: {report.listed} objects in the bucket, "
            f"{report.created + report.deleted} events re-sent"
        )

        # caption and embed run at the same time on one machine: half the cores each
        # (more threads than cores made both spin and halved the pipeline, bench/).
        threads = s.models.torch_threads or max(1, (os.cpu_count() or 2) // 2)
        model_env = {"GLIMPSE_MODELS__TORCH_THREADS": str(threads)}
        # Workers load their models in parallel: start all, then wait for each.
        services = [
            self._service_part("ingest", "services.ingest", s.stack.ingest_health_port),
            self._service_part(
                "caption", "services.caption", s.stack.caption_health_port, model_env
            ),
            # text embedding pays off in bigger batches than images do
            self._service_part(
                "embed",
                "services.embed",
                s.stack.embed_health_port,
                {**model_env, "GLIMPSE_WORKER__MAX_BATCH": "64"},
            ),
            # two speech workers: a voice search never waits behind a long voice note
            self._service_part(
                "transcribe",
                "services.transcribe",
                s.stack.transcribe_health_port,
                args=["uploads"],
            ),
            self._service_part(
                "transcribe-queries",
                "services.transcribe",
                s.stack.transcribe_queries_health_port,
                args=["queries"],
            ),
            self._service_part("search-api", "services.search_api", None),
        ]
        self.parts.extend(services)
        self._step("workers and API (loading models)", lambda: self._launch_all(services))
        self._write_endpoints(s, ready=True)
        return s

    def _ensure_admin_key(self, url: str) -> None:
        """The first start makes an admin API key and keeps it only in a 0600 file."""
        path = self.layout.api_key
        if path.exists():
            return
        with psycopg.connect(url, row_factory=dict_row) as conn:
            _, key = keys.create(conn, "admin (made by glimpse up)")
        write_private(path, key + "\n")
        self.progress(f"  created an admin API key in {path}")

    def _start_weed(
        self,
        name: str,
        workdir: Path,
        bucket: str,
        ports: seaweed.WeedPorts,
        after_restart: Callable[[], None] | None = None,
    ) -> None:
        assert self._s3_creds
        creds = self._s3_creds
        spec = seaweed.weed_spec(
            name,
            workdir,
            ports,
            self.layout.s3_identities,
            bucket,
            self.layout.logs / f"{name}.log",
            self.settings.stack.weed_memory_limit,
        )
        endpoint = f"http://127.0.0.1:{ports.s3}"
        self._start(
            Part(
                ManagedProcess(spec),
                wait_ready=lambda: seaweed.wait_ready(endpoint, creds, bucket),
                after_restart=after_restart,
            ),
            f"S3 store {name} (SeaweedFS)",
        )

    def _service_part(
        self,
        name: str,
        module: str,
        health_port: int | None,
        env_extra: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> Part:
        s = self.resolved
        env = {**service_env(s), **(env_extra or {})}
        if health_port:
            env["GLIMPSE_WORKER__HEALTH_PORT"] = str(health_port)
            ready_url = f"http://127.0.0.1:{health_port}/readyz"
        else:
            ready_url = f"http://{s.api.host}:{s.api.port}/readyz"
        spec = ProcessSpec(
            name=name,
            argv=[sys.executable, "-m", module, *(args or [])],
            log_path=self.layout.logs / f"{name}.log",
            env=env,
            stop_timeout_s=30,
        )
        return Part(ManagedProcess(spec), wait_ready=lambda: wait_http_ok(ready_url))

    def _start(self, part: Part, label: str) -> None:
        # Listed before it is ready, so an interrupted start still stops it.
        self.parts.append(part)
        self._step(label, lambda: self._launch(part))

    def _launch(self, part: Part) -> None:
        self._launch_all([part])

    def _launch_all(self, parts: list[Part]) -> None:
        """Start ``parts`` and wait until each is ready; fail fast if one exits first."""
        for part in parts:
            part.process.start()
        for part in parts:
            self._wait_ready(part)

    def _wait_ready(self, part: Part) -> None:
        outcome: list[BaseException | None] = []
        waiter = threading.Thread(target=_capture, args=(part.wait_ready, outcome), daemon=True)
        waiter.start()
        while waiter.is_alive():
            waiter.join(0.1)
            if not part.process.is_running():
                log_path = part.process.spec.log_path
                raise RuntimeError(
                    f"{part.name} exited with code {part.process.exit_code()} while starting; "
                    f"last lines of {log_path}:\n{_tail(log_path)}"
                )
        if outcome and outcome[0] is not None:
            raise outcome[0]

    def _step(self, label: str, action: Callable[[], object]) -> None:
        self._step_result(label, action)

    def _step_result(self, label: str, action: Callable[[], T]) -> T:
        started = time.monotonic()
        self.progress(f"▸ {label} …")
        result = action()
        self.progress(f"  {label} ready in {time.monotonic() - started:.1f}s")
        return result

    # --- reconcile -----------------------------------------------------------------
    def reconcile(self, s: Settings) -> ReconcileReport:
        with self._reconcile_lock, open_pool(s.database, "reconcile") as pool:
            producer = make_producer(s.kafka)
            try:
                with pool.connection() as conn:
                    report = reconcile(ObjectStore(s.s3), conn, producer, s.kafka.objects_topic)
                self.reconcile_reports.append(report)
                return report
            finally:
                producer.close(10)

    def _reconcile_soon(self, s: Settings) -> None:
        """After the broker or the media store restarted: notifications were dropped
        while it was down and for about a second after, so reconcile now and again later."""

        def run() -> None:
            for delay in (0.0, 5.0):
                if self._stopping.wait(delay):
                    return
                try:
                    self.reconcile(s)
                except Exception:
                    log.exception("reconcile after restart failed")

        threading.Thread(target=run, name="reconcile", daemon=True).start()

    # --- supervise -----------------------------------------------------------------
    def supervise(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Restart crashed parts with backoff until ``stop`` is set. Runs on the main
        thread: children die with the thread that started them (PDEATHSIG)."""
        while not stop.wait(poll_s):
            now = time.monotonic()
            for part in self.parts:
                proc = part.process
                if proc.is_running():
                    if part.restarts and now - proc.started_at > HEALTHY_AFTER_S:
                        part.restarts = 0
                    continue
                if part.restart_at is None:
                    delay = min(RESTART_BACKOFF_MAX_S, 2.0**part.restarts)
                    part.restart_at = now + delay
                    log.warning(
                        "%s exited with code %s; restarting in %.0fs (restart #%d)",
                        part.name,
                        proc.exit_code(),
                        delay,
                        part.restarts + 1,
                    )
                    self.progress(
                        f"! {part.name} exited (code {proc.exit_code()}); "
                        f"restarting in {delay:.0f}s"
                    )
                elif now >= part.restart_at:
                    part.restart_at = None
                    part.restarts += 1
                    self._restart(part)

    def _restart(self, part: Part) -> None:
        try:
            self._launch(part)
            self.progress(f"  {part.name} restarted")
            log.info("%s restarted", part.name)
            if part.after_restart:
                part.after_restart()
        except Exception:
            log.exception("%s failed to restart", part.name)

    # --- stop ----------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()
        for part in reversed(self.parts):
            self.progress(f"▸ stopping {part.name}")
            part.process.stop()
        self.parts.clear()
        if self.layout.endpoints_file.exists():
            self.layout.endpoints_file.unlink()

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)

    def _write_endpoints(self, s: Settings, ready: bool) -> None:
        assert s.s3.endpoint and s.kafka.bootstrap and s.database.url
        write_private(self.layout.database_url, s.database.url)
        Endpoints(
            s3_url=s.s3.endpoint,
            s3_bucket=s.s3.bucket,
            s3_credentials_file=str(self.layout.s3_credentials) if self._s3_creds else None,
            api_key_file=str(self.layout.api_key),
            kafka_bootstrap=s.kafka.bootstrap,
            database_url=redact_url(s.database.url),
            api_url=f"http://{s.api.host}:{s.api.port}",
            home=str(self.layout.home),
            supervisor_pid=os.getpid(),
            ready=ready,
        ).write(self.layout.endpoints_file)


def _capture(action: Callable[[], None], outcome: list[BaseException | None]) -> None:
    try:
        action()
        outcome.append(None)
    except BaseException as exc:
        outcome.append(exc)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def service_env(s: Settings) -> dict[str, str]:
    """The whole resolved configuration as GLIMPSE_ variables, for a worker or the API."""
    env = {"PYTHONUNBUFFERED": "1"}
    _flatten(s.model_dump(mode="json"), "GLIMPSE_", env)
    return env


def _flatten(values: dict[str, object], prefix: str, env: dict[str, str]) -> None:
    for name, value in values.items():
        key = prefix + name.upper()
        if isinstance(value, dict):
            _flatten(value, key + "__", env)
        elif value is not None:
            env[key] = json.dumps(value) if isinstance(value, list) else str(value)


def wait_http_ok(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s (last: {last})")
