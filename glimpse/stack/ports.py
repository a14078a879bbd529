"""Free local ports, for running several embedded stacks side by side (tests, benchmarks)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from glimpse.config import Settings, StackSettings

_taken: set[int] = set()
# SeaweedFS binds each of these ports and port + 10000 (gRPC).
_WEED_PORTS = ("media_", "broker_store_", "s3_port")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(grpc_offset: bool = False) -> int:
    """A free 127.0.0.1 port, never handed out twice by this process; with
    ``grpc_offset`` port + 10000 is free too.

    Below the kernel's ephemeral range (32768+), where an outgoing connection could
    grab the port between this check and the server's bind.
    """
    while True:
        port = random.randint(12000, 22700 if grpc_offset else 32700)
        candidates = [port, port + 10000] if grpc_offset else [port]
        if _taken.intersection(candidates) or not all(_is_free(p) for p in candidates):
            continue
        _taken.update(candidates)
        return port


def private_settings(home: Path) -> Settings:
    """Default settings with their own home and every port free."""
    names = [name for name in StackSettings.model_fields if name.endswith("_port")]
    weed = {n: free_port(grpc_offset=True) for n in names if n.startswith(_WEED_PORTS)}
    others = {n: free_port() for n in names if n not in weed}
    settings = Settings(home=home, stack=StackSettings.model_validate({**weed, **others}))
    settings.api.port = free_port()
    return settings


def worker_health_ports(stack: StackSettings) -> dict[str, int]:
    """The health/metrics port of each embedded worker, by its service name."""
    return {
        "ingest": stack.ingest_health_port,
        "caption": stack.caption_health_port,
        "embed": stack.embed_health_port,
        "transcribe": stack.transcribe_health_port,
        "transcribe-queries": stack.transcribe_queries_health_port,
    }
