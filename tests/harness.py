"""Test harness: free ports, private settings, and a real embedded stack in-process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from glimpse.config import RateLimit, Settings
from glimpse.stack.ports import free_port
from glimpse.stack.ports import private_settings as stack_settings_with_free_ports

__all__ = [
    "RunningStack",
    "free_port",
    "private_settings",
    "running_stack",
    "share_model_cache",
    "wait_until_searchable",
]


@dataclass
class _Shared:
    model_cache: Path | None = None


_shared = _Shared()


def share_model_cache(path: Path) -> None:
    """Stacks made by ``private_settings`` from now on keep their models' derived files
    in ``path`` instead of their own home: the API's text-to-visual bridge is fitted once
    per test session, not by every stack started on an empty home (~20 s of one core
    each, taken from the workers under test), and whisper's parts are joined once."""
    _shared.model_cache = path


def private_settings(home: Path) -> Settings:
    """Settings for a private test stack: own home, every port free, small limits."""
    settings = stack_settings_with_free_ports(home)
    settings.worker.max_wait_ms = 50
    settings.limits.max_bytes = 12 * 1024 * 1024  # lets a test upload "too large" cheaply
    # every test speaks from 127.0.0.1: one client to the rate limit, many tests' worth
    settings.api.voice_rate = RateLimit(per_second=5, burst=100)
    settings.api.image_rate = RateLimit(per_second=5, burst=100)
    # tests read pipeline topics back after the workers have (helpers.read_topic);
    # test_broker_retention_embedded runs retention on topics of its own
    settings.stack.broker_retention_interval_s = 0
    if _shared.model_cache is not None:
        settings.models.cache_dir = _shared.model_cache
    return settings


class RunningStack:
    """An EmbeddedStack started in-process, every worker ready (``start()`` alone returns
    while they still load). Each part is supervised by its own thread."""

    def __init__(self, settings: Settings, wait_for_workers: bool = True) -> None:
        from glimpse.stack.supervisor import EmbeddedStack

        self.stack = EmbeddedStack(settings)
        try:
            self.settings = self.stack.start()
            if wait_for_workers:
                self.stack.wait_all_ready()
        except BaseException:
            self.stack.stop()
            raise

    def close(self) -> None:
        self.stack.stop()


@contextmanager
def running_stack(settings: Settings) -> Iterator[RunningStack]:
    """A stack of its own for a fixture: ``with running_stack(s) as running: yield running``."""
    running = RunningStack(settings)
    try:
        yield running
    finally:
        running.close()


def wait_until_searchable(api_url: str, ids: list[str], timeout_s: float = 120) -> None:
    """Poll ``GET /v1/media/{id}`` until every id says ``searchable``."""
    deadline = time.monotonic() + timeout_s
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for mid in list(pending):
            response = httpx.get(f"{api_url}/v1/media/{mid}")
            if response.status_code == 200 and response.json()["searchable"]:
                pending.discard(mid)
        time.sleep(0.3)
    assert not pending, f"{len(pending)} of {len(ids)} never became searchable"
