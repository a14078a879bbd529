"""Test harness: free ports, private settings, and a real embedded stack in-process."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

from glimpse.config import Settings, StackSettings

_taken: set[int] = set()


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(grpc_offset: bool = False) -> int:
    """A free 127.0.0.1 port; with ``grpc_offset`` port+10000 is free too (SeaweedFS)."""
    while True:
        # Below the kernel's ephemeral range (32768+), where outgoing connections
        # could grab a port between our check and the server's bind.
        port = random.randint(12000, 22700 if grpc_offset else 32700)
        candidates = [port, port + 10000] if grpc_offset else [port]
        if any(p in _taken for p in candidates) or not all(_is_free(p) for p in candidates):
            continue
        _taken.update(candidates)
        return port


def private_settings(home: Path) -> Settings:
    """Settings for a private stack: own home, every port free."""
    weed = {
        name: free_port(grpc_offset=True)
        for name in StackSettings.model_fields
        if name.startswith(("media_", "broker_store_", "s3_port"))
    }
    others = {
        name: free_port()
        for name in StackSettings.model_fields
        if name.endswith("_port") and name not in weed
    }
    stack = StackSettings(**weed, **others)
    settings = Settings(home=home, stack=stack)
    settings.api.port = free_port()
    settings.worker.max_wait_ms = 50
    settings.limits.max_bytes = 12 * 1024 * 1024  # lets a test upload "too large" cheaply
    return settings


class RunningStack:
    """An EmbeddedStack started in-process and supervised by a background thread."""

    def __init__(self, settings: Settings) -> None:
        from glimpse.stack.supervisor import EmbeddedStack

        self.stack = EmbeddedStack(settings)
        self.settings = self.stack.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.stack.supervise, args=(self._stop,), daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.stack.stop()
