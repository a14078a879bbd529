"""Keep full garbage collections short in a long-running server.

A full collection walks every object the interpreter tracks. Once torch, transformers
and FastAPI are imported that is ~280,000 objects, ~160 ms on 2 CPU cores
(docs/ARCHITECTURE.md), paid by whichever request happens to allocate the object that
triggers it. What is alive once a service has loaded its models (modules, models,
routes) lives as long as the process, so it is moved out of the collector's sight
(``gc.freeze``): later collections walk only what came after. Reference counting
still frees those objects; only a cycle among them would stay (none is expected in
what a service keeps for its lifetime).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def settle() -> int:
    """Collect what is garbage now, then freeze every survivor; returns how many
    objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def settle_when_ready(
    ready: Callable[[], bool], check_s: float = 1.0, give_up_s: float = 600.0
) -> None:
    """``settle`` once ``ready()`` says the long-lived objects are in place (models
    loaded), or after ``give_up_s`` without it (what is loaded by then still counts)."""
    deadline = time.monotonic() + give_up_s
    while not ready() and time.monotonic() < deadline:
        await asyncio.sleep(check_s)
    started = time.perf_counter()
    frozen = settle()
    log.info(
        "heap settled: %d objects out of the collector's walk (%.0f ms)",
        frozen,
        (time.perf_counter() - started) * 1000,
    )
