"""Background passes of the embedded stack (reconcile, stage repair, broker retention):
each retried with backoff until it gets through, as the parts it needs restart."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from glimpse.errors import backoff_delay

log = logging.getLogger(__name__)


def until_done(
    one_pass: Callable[[], object], name: str, stop: threading.Event, max_delay_s: float = 10.0
) -> bool:
    """``one_pass()`` retried with backoff until it returns; False if ``stop`` came first."""
    attempt = 0
    while not stop.is_set():
        try:
            one_pass()
            return True
        except Exception as exc:
            attempt += 1
            delay = backoff_delay(attempt, 0.5, max_delay_s)
            log.warning("%s failed (%r); retry in %.1fs", name, exc, delay)
            stop.wait(delay)
    return False


def every(
    name: str, interval_s: float, one_pass: Callable[[], object], stop: threading.Event
) -> None:
    """In a thread of its own: ``one_pass`` every ``interval_s`` until ``stop`` (0: never)."""
    if interval_s <= 0:
        return

    def run() -> None:
        while not stop.wait(interval_s):
            until_done(one_pass, name, stop)

    threading.Thread(target=run, name=f"{name}-periodic", daemon=True).start()
