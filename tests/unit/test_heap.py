"""glimpse.heap: what lives on leaves the collector's walk; new garbage is still found."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from glimpse.heap import settle, settle_when_ready


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """The test process's heap goes back under the collector afterwards."""
    yield
    gc.unfreeze()


def cycle() -> Node:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


def test_settle_freezes_what_is_alive_and_a_later_cycle_is_still_collected() -> None:
    kept = cycle()

    frozen = settle()

    assert frozen > 0  # (other threads may free some of them meanwhile)
    assert not any(o is kept for o in gc.get_objects())  # out of the walk
    gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())
    settle()
    cycle()  # garbage made after settling
    assert gc.collect() >= 2


def test_settle_when_ready_waits_for_the_models_and_settles_once() -> None:
    checks: list[bool] = []

    def ready() -> bool:
        checks.append(len(checks) >= 2)  # ready on the third look
        return checks[-1]

    asyncio.run(settle_when_ready(ready, check_s=0.01, give_up_s=5))

    assert checks == [False, False, True]
    assert gc.get_freeze_count() > 0


def test_settle_when_ready_settles_anyway_after_giving_up() -> None:
    asyncio.run(settle_when_ready(lambda: False, check_s=0.01, give_up_s=0.05))

    assert gc.get_freeze_count() > 0
