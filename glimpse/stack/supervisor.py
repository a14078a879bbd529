"""glimpse's start recipe for the embedded stack: which parts, in what order, with what
settings. Supervising them (restarts, backoff, liveness) is ``glimpse.stack.supervision``.

Order (DESIGN.md): S3 store for the broker → tansu (durable on that store) → topics
→ media S3 store whose filer notifies tansu; Postgres → database → migrations, at the
same time; then the workers and the API. ``start()`` returns once the servers and the
API are ready (uploads are accepted and queue in Kafka); the workers keep loading
their models in the background (``loading()``, ``wait_all_ready()``). Parts given as
external endpoints in the settings are not started; the same code then runs against
them (the production path).
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

from glimpse.bus import all_topics, ensure_topics, topic_partitions
from glimpse.config import S3Settings, Settings
from glimpse.db import keys
from glimpse.db.migrate import migrate
from glimpse.lag_exporter import LagExporter
from glimpse.reconcile import ReconcileReport
from glimpse.redact import redact_url
from glimpse.stack import broker, pg_access, postgres, probes, seaweed
from glimpse.stack.broker_retention import BrokerRetention, RetentionPass
from glimpse.stack.credentials import (
    S3Credentials,
    load_or_create,
    write_private,
    write_seaweed_identities,
)
from glimpse.stack.layout import Endpoints, HomeLayout
from glimpse.stack.ports import WorkerReplica, worker_health_ports, worker_replicas
from glimpse.stack.process import ManagedProcess, ProcessSpec
from glimpse.stack.reconciling import Reconciler
from glimpse.stack.supervision import Part, PartState, RestartPolicy, Supervisor
from glimpse.stack.workers import RECIPES, idle_replicas, worker_env
from glimpse.stages import stage_topics
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)
T = TypeVar("T")

BROKER_BUCKET = "glimpse-broker"

Progress = Callable[[str], None]


@dataclass
class EmbeddedStack:
    settings: Settings
    progress: Progress = field(default=lambda message: None)

    def __post_init__(self) -> None:
        self.layout = HomeLayout.at(self.settings.home)
        policy = RestartPolicy(liveness_timeout_s=self.settings.stack.liveness_timeout_s)
        self.supervisor = Supervisor(policy, self.progress, on_change=self._write_states)
        self._states_lock = threading.Lock()
        self._s3_creds: S3Credentials | None = None
        self._reconciler: Reconciler | None = None
        self._lag_exporter: LagExporter | None = None
        self._retention: BrokerRetention | None = None
        self._servers: list[Part] = []  # what the API and the workers need running
        self._started_at = 0.0

    @property
    def parts(self) -> list[Part]:
        return self.supervisor.parts

    def part(self, name: str) -> Part:
        return self.supervisor.part(name)

    @property
    def reconcile_reports(self) -> list[ReconcileReport]:
        return self._reconciler.reports if self._reconciler else []

    @property
    def repair_reports(self) -> list[dict[str, int]]:
        """Per stage-repair pass, the items it announced again per stage."""
        return self._reconciler.repairs if self._reconciler else []

    @property
    def retention_passes(self) -> list[RetentionPass]:
        """The embedded broker's retention passes so far (what each deleted)."""
        return list(self._retention.passes) if self._retention else []

    # --- start ---------------------------------------------------------------------
    def start(self) -> Settings:
        """Start everything; return once the servers and the API are ready (workers may
        still be loading). Returns the settings with every endpoint filled in."""
        self._started_at = time.monotonic()
        self.layout.ensure()
        s = self.settings.model_copy(deep=True)
        s.home = self.layout.home
        ports = s.stack
        if not s.kafka.bootstrap or not s.s3.endpoint:
            self._s3_creds = load_or_create(self.layout.s3_credentials)
            write_seaweed_identities(self.layout.s3_identities, self._s3_creds)

        # Postgres does not depend on the broker's chain: start both at once.
        pg = None if s.database.url else self._start_postgres()
        if not s.kafka.bootstrap:
            self._start_broker(s)
        self._step("Kafka topics", lambda: ensure_topics(s.kafka, all_topics(s.kafka)))
        self._warn_idle_replicas(s)
        self._start_lag_exporter(s)
        media_store = None if s.s3.endpoint else self._start_media_store(s)
        if pg is not None:
            s.database.url = self._step_result(
                "Postgres + pgvector", lambda: self._wait_postgres(pg, ports.postgres_port)
            )
        url = s.database.url
        assert url
        self._step("migrations", lambda: migrate(url))
        self._ensure_admin_key(url)
        if media_store is not None:
            self._step(
                "S3 media store (SeaweedFS)", lambda: self.supervisor.wait_ready(media_store)
            )
        self.resolved = s
        self._reconciler = Reconciler(s)
        report = self._step_result("reconcile", self._reconciler.run_once)
        self.progress(
            f"  reconcile: {report.listed} objects in the bucket, "
            f"{report.created + report.deleted} events re-sent"
        )
        self._reconciler.every(s.stack.reconcile_interval_s)
        self._reconciler.repair_every(s.stack.repair_interval_s, s.stack.repair_after_s)
        self._start_api_and_workers(s)
        self._write_endpoints(s, ready=True)
        return s

    def _start_lag_exporter(self, s: Settings) -> None:
        """Every group's lag from the broker, for Prometheus, in this process: it holds
        no state, so it needs no supervision (a scrape while the broker is down says so)."""
        self._lag_exporter = LagExporter.of_pipeline(
            "127.0.0.1", s.stack.lag_exporter_port, s.kafka
        )
        self._lag_exporter.start()

    def _start_postgres(self) -> tuple[Part, pg_access.PostgresCredentials]:
        """The embedded Postgres + pgvector, as a supervised part (not waited for here).
        Ready (also after a restart) = it answers the superuser; roles are set up once,
        by ``_wait_postgres``."""
        port = self.settings.stack.postgres_port
        creds, fresh = pg_access.load_or_create(self.layout.pg_credentials)
        spec = postgres.postgres_spec(
            self.layout.pgdata,
            self.layout.pg_socket_dir,
            port,
            self.layout.logs / "postgres.log",
            creds,
            fresh,
        )
        superuser = pg_access.superuser_conninfo(port, creds)
        part = self.supervisor.add(
            Part(
                ManagedProcess(spec),
                wait_ready=lambda: wait_until(
                    lambda: probes.postgres_answers(superuser), 30.0, "Postgres"
                ),
                is_live=lambda: probes.postgres_answers(superuser),
            )
        )
        return part, creds

    def _wait_postgres(self, pg: tuple[Part, pg_access.PostgresCredentials], port: int) -> str:
        """Once it is ready: the services get a plain role; the superuser's password stays
        with `up`. Returns the services' database URL."""
        part, creds = pg
        self.supervisor.wait_ready(part)
        return postgres.wait_ready_and_set_up(
            port, self.layout.pg_socket_dir, creds, self.layout.pgpass
        )

    def _start_broker(self, s: Settings) -> None:
        """The broker's S3 store, then tansu on it; each restart of either reconciles."""
        ports = s.stack
        assert self._s3_creds
        store_url = f"http://127.0.0.1:{ports.broker_store_s3_port}"
        # tansu does not recover by itself when its store restarts (every produce fails
        # with UnknownError until it is restarted, seen in bench/chaos.py): restart it too;
        # its own restart then reconciles.
        store = self._weed_part(
            "s3-broker",
            self.layout.broker_store,
            BROKER_BUCKET,
            seaweed.broker_store_ports(ports),
            after_restart=lambda: self.supervisor.restart("broker"),
        )
        self._step("S3 store s3-broker (SeaweedFS)", lambda: self.supervisor.wait_ready(store))
        s.kafka.bootstrap = f"127.0.0.1:{ports.kafka_port}"
        bootstrap = s.kafka.bootstrap
        spec = broker.tansu_spec(
            ports.kafka_port,
            self.layout.logs / "broker.log",
            store_url,
            BROKER_BUCKET,
            self._s3_creds,
        )
        tansu = self.supervisor.add(
            Part(
                ManagedProcess(spec),
                wait_ready=lambda: broker.wait_ready(bootstrap),
                is_live=lambda: probes.kafka_answers("127.0.0.1", ports.kafka_port),
                after_restart=self._reconcile_soon,
            )
        )
        self._step("Kafka broker (tansu)", lambda: self.supervisor.wait_ready(tansu))
        store_settings = S3Settings(
            endpoint=store_url,
            bucket=BROKER_BUCKET,
            access_key=self._s3_creds.access_key,
            secret_key=self._s3_creds.secret_key,
        )
        self._retention = BrokerRetention(
            bootstrap, ObjectStore(store_settings), all_topics(s.kafka), broker.CLUSTER_ID
        )
        self._retention.every(s.stack.broker_retention_interval_s)

    def _start_media_store(self, s: Settings) -> Part:
        """The media S3 store, whose filer notifies the broker (so: after the broker)."""
        ports = s.stack
        workdir = self.layout.media_store
        workdir.mkdir(parents=True, exist_ok=True)
        assert s.kafka.bootstrap and self._s3_creds
        (workdir / "notification.toml").write_text(
            seaweed.notification_toml(s.kafka.bootstrap, s.kafka.objects_topic)
        )
        part = self._weed_part(
            "s3-media",
            workdir,
            s.s3.bucket,
            seaweed.media_store_ports(ports),
            after_restart=self._reconcile_soon,
        )
        s.s3.endpoint = f"http://127.0.0.1:{ports.s3_port}"
        s.s3.access_key, s.s3.secret_key = self._s3_creds.access_key, self._s3_creds.secret_key
        return part

    def _start_api_and_workers(self, s: Settings) -> None:
        """The API and ingest (no models) first; the model workers once the API is ready:
        on a small machine their seconds of model loading would slow the API's start
        several times over (measured: API ready in ~2.5 s alone, ~10 s beside them).
        Each needs the servers started before it, not the others: they stop together."""
        self._servers = list(self.supervisor.parts)
        api = self.supervisor.add(self._service_part("search-api", "services.search_api", None))
        replicas = worker_replicas(s.stack)
        for replica in replicas:
            if replica.stage == "ingest":
                self.supervisor.add(self._worker_part(replica))
        self._step("API", lambda: self.supervisor.wait_ready(api))
        for replica in replicas:
            if replica.stage != "ingest":
                self.supervisor.add(self._worker_part(replica))
        threading.Thread(target=self._report_workers_ready, daemon=True).start()

    def _worker_part(self, replica: WorkerReplica) -> Part:
        """One process of a stage (its replicas join the stage's consumer group)."""
        recipe = RECIPES[replica.stage]
        env = worker_env(replica.stage, self.resolved, os.cpu_count() or 2)
        return self._service_part(
            replica.name, recipe.module, replica.port, env, args=list(recipe.args)
        )

    def _warn_idle_replicas(self, s: Settings) -> None:
        """A replica beyond its topics' partition count gets no partition: say so (topics
        that already exist keep the count they were created with)."""
        topics = [t for ts in stage_topics(s.kafka).values() for t in ts]
        if all(s.stack.replicas.of(stage) == 1 for stage in stage_topics(s.kafka)):
            return
        for stage, (replicas, partitions) in idle_replicas(
            s, topic_partitions(s.kafka, topics)
        ).items():
            self.progress(
                f"! {stage}: {replicas} replicas but {partitions} partitions per topic: "
                f"{replicas - partitions} will idle (GLIMPSE_KAFKA__PARTITIONS sets the "
                "count of new topics)"
            )

    def loading(self) -> list[str]:
        """Workers that have not been ready yet since ``start()``, and the API while its
        query model loads (searches answer 503 until then)."""
        workers = worker_health_ports(self.settings.stack)
        names = [p.name for p in self.parts if p.name in workers and not p.ready_once.is_set()]
        if not self._query_model_loaded():
            names.append("search-api (query model)")
        return names

    def wait_all_ready(self, timeout_s: float = 300.0) -> None:
        """Block until every part (the workers too) was ready once and the API can search."""
        deadline = time.monotonic() + timeout_s
        for part in list(self.parts):
            self.supervisor.wait_ready(part, max(0.0, deadline - time.monotonic()))
        while not self._query_model_loaded():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API's query model not loaded after {timeout_s:.0f}s")
            time.sleep(0.2)

    def _query_model_loaded(self) -> bool:
        """True when this stack runs no API, or its /readyz says the query models are in
        (the visual one: done loading, whether it is in, off or failed)."""
        if not any(p.name == "search-api" for p in self.parts):
            return True
        api = self.resolved.api
        try:
            checks = httpx.get(f"http://{api.host}:{api.port}/readyz", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        if not isinstance(checks, dict):
            return False
        return checks.get("query_model") == "ok" and checks.get("image_model") != "loading"

    def _report_workers_ready(self) -> None:
        try:
            self.wait_all_ready()
        except Exception as exc:
            self.progress(f"! workers not ready: {exc}")
            return
        if self.parts:
            elapsed = time.monotonic() - self._started_at
            self.progress(f"  all workers ready {elapsed:.1f}s after the start")

    def _ensure_admin_key(self, url: str) -> None:
        """The first start makes an admin API key and keeps it only in a 0600 file."""
        path = self.layout.api_key
        if path.exists():
            return
        with psycopg.connect(url, row_factory=dict_row) as conn:
            _, key = keys.create(conn, "admin (made by glimpse up)")
        write_private(path, key + "\n")
        self.progress(f"  created an admin API key in {path}")

    def _weed_part(
        self,
        name: str,
        workdir: Path,
        bucket: str,
        ports: seaweed.WeedPorts,
        after_restart: Callable[[], None],
    ) -> Part:
        """A SeaweedFS S3 store, supervised; ``after_restart`` runs once a restart is ready."""
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
        return self.supervisor.add(
            Part(
                ManagedProcess(spec),
                wait_ready=lambda: seaweed.wait_ready(endpoint, creds, bucket),
                is_live=lambda: probes.http_answers(endpoint),
                after_restart=after_restart,
            )
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
            base = f"http://127.0.0.1:{health_port}"
        else:
            base = f"http://{s.api.host}:{s.api.port}"
        spec = ProcessSpec(
            name=name,
            argv=[sys.executable, "-m", module, *(args or [])],
            log_path=self.layout.logs / f"{name}.log",
            env=env,
            stop_timeout_s=30,
        )
        return Part(
            ManagedProcess(spec),
            wait_ready=lambda: wait_http_ok(f"{base}/readyz", s.stack.ready_timeout_s),
            is_live=lambda: probes.http_ok(f"{base}/healthz"),
            needs=self._servers,
        )

    def _step(self, label: str, action: Callable[[], object]) -> None:
        self._step_result(label, action)

    def _step_result(self, label: str, action: Callable[[], T]) -> T:
        started = time.monotonic()
        self.progress(f"▸ {label} …")
        result = action()
        self.progress(f"  {label} ready in {time.monotonic() - started:.1f}s")
        return result

    # --- reconcile -----------------------------------------------------------------
    def reconcile(self) -> ReconcileReport:
        assert self._reconciler, "the stack is not started"
        return self._reconciler.run_once()

    def _reconcile_soon(self) -> None:
        if self._reconciler:
            self._reconciler.soon()

    # --- supervise -----------------------------------------------------------------
    def supervise(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Block until ``stop`` is set. Each part is watched and restarted by its own
        thread (``Supervisor``); this only keeps the caller waiting, e.g. ``glimpse up``."""
        while not stop.wait(poll_s):
            pass

    def states(self) -> dict[str, PartState]:
        return {p.name: p.state for p in self.parts}

    def _write_states(self) -> None:
        """run/parts.json: what `glimpse status` shows for a part not answering yet."""
        with self._states_lock:
            states = {
                p.name: {"state": p.state.value, "restarts": p.restarts, "pid": p.process.pid}
                for p in list(self.parts)
            }
            path = self.layout.parts_file
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(states, indent=2))
            tmp.replace(path)

    # --- stop ----------------------------------------------------------------------
    def stop(self) -> None:
        if self._reconciler:
            self._reconciler.stop()
        if self._lag_exporter:
            self._lag_exporter.stop()
        if self._retention:
            self._retention.stop()
        self.supervisor.stop()
        for path in (self.layout.endpoints_file, self.layout.parts_file):
            path.unlink(missing_ok=True)

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


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s")
        time.sleep(0.1)


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
