"""``DecodeBudget``: admit image decodes by their size, not by a count of threads.

Decoding costs memory in proportion to pixels (a 100-MP progressive JPEG took about
670 MB), so a fixed number of decoding threads is either wasteful for phone photos or
too much for panoramas. Each decode asks for width x height, read from the header
before a pixel is decoded, and waits until that much of the budget is free. An image
larger than the whole budget waits for all of it and so runs alone. Waiters are
admitted in arrival order, so a large image is not starved by a stream of small ones.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

#: What decoders call with the pixel count they are about to decode.
Admit = Callable[[int], AbstractContextManager[None]]


@contextmanager
def unlimited(pixels: int) -> Iterator[None]:
    """No budget: every decode starts at once."""
    yield


class DecodeBudget:
    def __init__(self, pixels: int) -> None:
        if pixels <= 0:
            raise ValueError("the decode budget must be positive")
        self.capacity = pixels
        self._in_use = 0
        self._queue: deque[object] = deque()
        self._changed = threading.Condition()

    @property
    def in_use(self) -> int:
        with self._changed:
            return self._in_use

    @contextmanager
    def admit(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` of the budget (all of it, at most) while the block runs."""
        weight = max(1, min(pixels, self.capacity))
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            self._changed.wait_for(
                lambda: self._queue[0] is ticket and self._in_use + weight <= self.capacity
            )
            self._queue.popleft()
            self._in_use += weight
            self._changed.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._changed:
                self._in_use -= weight
                self._changed.notify_all()
