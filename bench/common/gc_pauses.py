"""The garbage collector's pauses while a measurement runs (a full collection over a
large heap lands in whichever timed request happens to trigger it)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pauses:
    ms: dict[int, list[float]] = field(default_factory=lambda: {0: [], 1: [], 2: []})

    def summary(self, generation: int = 2) -> str:
        pauses = self.ms[generation]
        if not pauses:
            return f"no generation-{generation} collection"
        return (
            f"{len(pauses)} generation-{generation} collections, "
            f"longest {max(pauses):.0f} ms, {sum(pauses):.0f} ms in all"
        )


@contextmanager
def recorded() -> Iterator[Pauses]:
    pauses = Pauses()
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses.ms[int(info["generation"])].append((time.perf_counter() - started.pop()) * 1000)

    gc.callbacks.append(callback)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(callback)
