"""Test harness: free ports, private settings, and a real embedded stack in-process."""

from __future__ import annotations

import threading
from pathlib import Path

from glimpse.config import Settings
from glimpse.stack.ports import free_port
from glimpse.stack.ports import private_settings as stack_settings_with_free_ports

__all__ = ["RunningStack", "free_port", "private_settings"]


def private_settings(home: Path) -> Settings:
    """Settings for a private test stack: own home, every port free, small limits."""
    settings = stack_settings_with_free_ports(home)
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
