"""What a worker did lately, for people (``glimpse status`` reads it from ``/status``):
messages finished in the last minute and the last error. Prometheus has the same
counts as metrics; this is for a laptop with no Prometheus running."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class LastError:
    at: float  # Unix time
    kind: str  # "transient" (infrastructure, retried) or "item" (dead-lettered)
    error_type: str
    message: str


class Activity:
    """Thread-safe: the loop writes, the health server's threads read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished: deque[tuple[float, int]] = deque()
        self._last_error: LastError | None = None
        self._lag: int | None = None

    def finished(self, count: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._finished.append((now, count))
            self._trim(now)

    def error(self, kind: str, exc: BaseException) -> None:
        message = (str(exc) or repr(exc))[:500]
        with self._lock:
            self._last_error = LastError(time.time(), kind, type(exc).__name__, message)

    def lag(self, total: int | None) -> None:
        with self._lock:
            self._lag = total

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            per_minute = sum(n for _, n in self._finished) * 60.0 / WINDOW_S
            last = asdict(self._last_error) if self._last_error else None
            return {"messages_per_minute": per_minute, "lag": self._lag, "last_error": last}

    def _trim(self, now: float) -> None:
        while self._finished and self._finished[0][0] < now - WINDOW_S:
            self._finished.popleft()
