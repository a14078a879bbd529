"""What a worker needs before it can consume: wait for it with backoff, never exit.

A worker started while Postgres, the broker or S3 is down (they restart together
after a crash, or come up in any order in a cluster) waits here and says what it
waits for on ``/readyz``, instead of exiting and being restarted in a loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from kafka import KafkaAdminClient

from glimpse.config import Settings
from glimpse.errors import backoff_delay
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)

TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class Dependency:
    """A named check that raises while the dependency is not usable."""

    name: str
    check: Callable[[], None]


def postgres(url: str) -> Dependency:
    def check() -> None:
        with psycopg.connect(url, connect_timeout=int(TIMEOUT_S)) as conn:
            row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        # Not migrated yet: a handler would hit missing tables and dead-letter good items.
        if not row or not row[0]:
            raise RuntimeError("the database has no schema yet (migrations not applied)")

    return Dependency("postgres", check)


def broker(bootstrap: str) -> Dependency:
    def check() -> None:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(TIMEOUT_S * 1000)
        )
        try:
            admin.list_topics()
        finally:
            admin.close()

    return Dependency("broker", check)


def s3(store: ObjectStore) -> Dependency:
    return Dependency("s3", store.check_bucket)


def of(settings: Settings, *, needs_s3: bool = True) -> list[Dependency]:
    """Postgres, the broker and (unless ``needs_s3`` is False) S3, from resolved settings."""
    assert settings.database.url and settings.kafka.bootstrap
    found = [postgres(settings.database.url), broker(settings.kafka.bootstrap)]
    if needs_s3:
        found.append(s3(ObjectStore(settings.s3)))
    return found


def wait_for(
    dependencies: Sequence[Dependency],
    stop: threading.Event,
    on_waiting: Callable[[list[str]], None] = lambda names: None,
    initial_s: float = 0.2,
    max_s: float = 5.0,
) -> bool:
    """Check every dependency until all pass; back off in between. False if stopped."""
    attempt = 0
    started = time.monotonic()
    while not stop.is_set():
        failing = [d for d in dependencies if not _passes(d)]
        on_waiting([d.name for d in failing])
        if not failing:
            if attempt:
                log.info("dependencies up after %.1fs", time.monotonic() - started)
            return True
        attempt += 1
        delay = backoff_delay(attempt, initial_s, max_s)
        log.info("waiting for %s; next check in %.1fs", ", ".join(d.name for d in failing), delay)
        stop.wait(delay)
    return False


def _passes(dependency: Dependency) -> bool:
    try:
        dependency.check()
        return True
    except Exception as exc:
        log.debug("%s not usable yet: %r", dependency.name, exc)
        return False
