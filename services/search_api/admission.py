"""Admission: how much one client may ask for, and how many voice searches may wait.

Both answer 429 with ``Retry-After`` when they refuse, so well-behaved clients back off.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import HTTPException

from glimpse.config import RateLimit


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per client. Buckets of clients not seen lately are forgotten
    (least recently used first), so a flood of addresses cannot grow memory."""

    def __init__(
        self,
        rate: RateLimit,
        what: str,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.what = what
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Take one token for ``client``: 0 when allowed, else seconds until one is back."""
        if self.rate.per_second <= 0:
            return 0.0
        now = self.clock()
        bucket = self._buckets.pop(client, None) or _Bucket(float(self.rate.burst), now)
        bucket.tokens = min(
            float(self.rate.burst), bucket.tokens + (now - bucket.updated) * self.rate.per_second
        )
        bucket.updated = now
        self._buckets[client] = bucket
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate.per_second

    def admit(self, client: str) -> None:
        """Raise 429 when ``client`` is over its rate."""
        wait = self.retry_after(client)
        if wait > 0:
            raise HTTPException(
                429,
                f"too many {self.what} from this client: at most {self.rate.per_second:g} "
                f"a second (bursts of {self.rate.burst}); try again in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )


class WaitingLimit:
    """At most ``capacity`` requests inside at once (each voice search holds its clip
    and a listener slot while it waits for the transcript)."""

    def __init__(self, capacity: int, retry_after_s: int, what: str) -> None:
        self.capacity = capacity
        self.retry_after_s = retry_after_s
        self.what = what
        self.inside = 0  # touched only on the event loop: no lock needed

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.inside >= self.capacity:
            raise HTTPException(
                429,
                f"{self.inside} {self.what} are already waiting; try again in "
                f"{self.retry_after_s} s",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.inside += 1
        try:
            yield
        finally:
            self.inside -= 1
