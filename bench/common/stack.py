"""The embedded stack as the benchmarks run it: private settings (own home, free
ports), a timed start and stop, its parts' pids, a worker's /metrics, an S3 client."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import httpx
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from glimpse.config import Settings
from glimpse.stack.ports import private_settings as stack_settings_with_free_ports
from glimpse.stack.supervisor import EmbeddedStack

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

_STEP_DONE = re.compile(r"^\s+(.+) ready in ([\d.]+)s$")


def private_settings(home: Path, weed_memory_limit: str | None = None) -> Settings:
    """Default settings (as ``glimpse up`` uses them) with a private home and every port
    free, so the bench never collides with a running glimpse or a test stack."""
    settings = stack_settings_with_free_ports(home)
    if weed_memory_limit:
        settings.stack.weed_memory_limit = weed_memory_limit
    return settings


@dataclass
class StartStop:
    """One ``start()`` … ``stop()`` of the stack: wall times and the slowest steps."""

    start_s: float = 0.0
    stop_s: float = 0.0
    steps: list[tuple[str, float]] = field(default_factory=list)


@contextlib.contextmanager
def running_stack(
    settings: Settings, timing: StartStop, ready_timeout_s: float = 300.0
) -> Iterator[tuple[EmbeddedStack, Settings]]:
    """Start the stack (timing ``start()`` to its return: every part is ready then,
    ingest and the API included) and always stop it again."""

    def progress(message: str) -> None:
        if done := _STEP_DONE.match(message):
            timing.steps.append((done[1], float(done[2])))

    stack = EmbeddedStack(settings, progress=progress)
    try:
        started = time.perf_counter()
        resolved = stack.start()
        # start() returns while workers still load their models
        stack.wait_all_ready(ready_timeout_s)
        timing.start_s = time.perf_counter() - started
        yield stack, resolved
    finally:
        stopping = time.perf_counter()
        stack.stop()
        timing.stop_s = time.perf_counter() - stopping


def part_pids(stack: EmbeddedStack) -> dict[str, int]:
    return {
        p.name: p.process.pid
        for p in stack.parts
        if p.process.pid is not None and p.process.is_running()
    }


def s3_client(s: Settings, threads: int) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=s.s3.endpoint,
        aws_access_key_id=s.s3.access_key,
        aws_secret_access_key=s.s3.secret_key,
        region_name=s.s3.region,
        config=Config(
            max_pool_connections=threads,  # one connection per uploader thread
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


def worker_metrics(port: int) -> dict[str, float]:
    """A worker's Prometheus samples (its health port's /metrics), keyed ``name{labels}``
    (service dropped)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(
                f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "service"
            )
            values[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return values


# The workers' Prometheus series the benchmarks read (see glimpse's worker metrics).
MESSAGES = "glimpse_worker_batch_size_sum"  # messages handled: the sum of batch sizes
BATCHES = "glimpse_worker_batch_seconds_count"
IN_BATCHES = "glimpse_worker_batch_seconds_sum"  # seconds spent inside batches
INFLIGHT = "glimpse_worker_inflight_messages"
