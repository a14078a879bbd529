"""Seconds spent in the named phases of one piece of work (a search: embed, SQL, fuse).

phases = Phases()
with phases.phase("vector_sql"):
    ...
phases.seconds   # {"vector_sql": 0.004}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    """One per request. Phases may run in several threads at once (a search's lists run
    side by side): each adds its own time, so their sum can exceed the request's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block, failed or not (a cancelled full-text query still took its time);
        a phase entered twice adds up."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
