"""Free local ports, for running several embedded stacks side by side (tests, benchmarks)."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass
from pathlib import Path

from glimpse.config import MAX_REPLICAS, ReplicaSettings, Settings, StackSettings

_taken: set[int] = set()
# SeaweedFS binds each of these ports and port + 10000 (gRPC).
_WEED_PORTS = ("media_", "broker_store_", "s3_port")
# Replicas beyond a stage's first take consecutive ports from replica_base_port.
_REPLICA_SPAN = len(ReplicaSettings.model_fields) * (MAX_REPLICAS - 1)


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(grpc_offset: bool = False, span: int = 1) -> int:
    """A free 127.0.0.1 port, never handed out twice by this process; with
    ``grpc_offset`` port + 10000 is free too; with ``span`` the ``span - 1`` ports after
    it are free too.

    Below the kernel's ephemeral range (32768+), where an outgoing connection could
    grab the port between this check and the server's bind.
    """
    while True:
        port = random.randint(12000, 22700 if grpc_offset else 32700 - span)
        candidates = [port + i for i in range(span)]
        if grpc_offset:
            candidates += [p + 10000 for p in candidates]
        if _taken.intersection(candidates) or not all(_is_free(p) for p in candidates):
            continue
        _taken.update(candidates)
        return port


def private_settings(home: Path) -> Settings:
    """Default settings with their own home and every port free."""
    names = [name for name in StackSettings.model_fields if name.endswith("_port")]
    weed = {n: free_port(grpc_offset=True) for n in names if n.startswith(_WEED_PORTS)}
    others = {
        n: free_port(span=_REPLICA_SPAN if n == "replica_base_port" else 1)
        for n in names
        if n not in weed
    }
    settings = Settings(home=home, stack=StackSettings.model_validate({**weed, **others}))
    settings.api.port = free_port()
    return settings


@dataclass(frozen=True, slots=True)
class WorkerReplica:
    """One worker process of the embedded stack. The first replica of a stage is named
    after it (``caption``), the others ``caption-2``, ``caption-3`` …"""

    name: str
    stage: str
    port: int  # health, readiness, /status and /metrics


def worker_replicas(stack: StackSettings) -> list[WorkerReplica]:
    """Every worker process the embedded stack runs, in pipeline order."""
    first = {
        "ingest": stack.ingest_health_port,
        "caption": stack.caption_health_port,
        "embed": stack.embed_health_port,
        "transcribe": stack.transcribe_health_port,
        "transcribe-queries": stack.transcribe_queries_health_port,
    }
    replicas: list[WorkerReplica] = []
    next_port = stack.replica_base_port
    for stage, port in first.items():
        replicas.append(WorkerReplica(stage, stage, port))
        for n in range(2, stack.replicas.of(stage) + 1):
            replicas.append(WorkerReplica(f"{stage}-{n}", stage, next_port))
            next_port += 1
    return replicas


def worker_health_ports(stack: StackSettings) -> dict[str, int]:
    """The health/metrics port of each embedded worker process, by its name."""
    return {replica.name: replica.port for replica in worker_replicas(stack)}


def scrape_targets(s: Settings) -> dict[str, list[str]]:
    """What Prometheus scrapes on the embedded stack: job (as compose names them,
    ``glimpse-<service>``) -> host:port of every process' /metrics, replicas included."""
    jobs: dict[str, list[str]] = {}
    for replica in worker_replicas(s.stack):
        jobs.setdefault(f"glimpse-{replica.stage}", []).append(f"127.0.0.1:{replica.port}")
    jobs["glimpse-search-api"] = [f"{s.api.host}:{s.api.port}"]
    jobs["glimpse-lag-exporter"] = [f"127.0.0.1:{s.stack.lag_exporter_port}"]
    return jobs
