"""Seconds spent in the named phases of one piece of work (a search: embed, SQL, fuse).

phases = Phases()
with phases.phase("vector_sql"):
    ...
phases.seconds   # {"vector_sql": 0.004}
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    """Not shared between threads: one per request."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block, failed or not (a cancelled full-text query still took its time);
        a phase entered twice adds up."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
