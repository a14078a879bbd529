"""Image decodes are admitted by pixels: a budget, not a number of threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from badfiles import jpeg

from glimpse.config import LimitsSettings
from glimpse.media import validate_media
from glimpse.media.budget import DecodeBudget

MP = 1_000_000


def start(budget: DecodeBudget, pixels: int, log: list[str], name: str) -> threading.Event:
    """A decode of ``pixels`` in a thread; it logs when admitted and runs until released."""
    release = threading.Event()

    def decode() -> None:
        with budget.admit(pixels):
            log.append(name)
            release.wait(10)

    threading.Thread(target=decode, daemon=True).start()
    return release


def settle() -> None:
    time.sleep(0.2)


def test_decodes_run_together_while_they_fit_in_the_budget() -> None:
    budget, log = DecodeBudget(100 * MP), []
    releases = [start(budget, 30 * MP, log, f"photo{i}") for i in range(3)]
    settle()
    assert log == ["photo0", "photo1", "photo2"]
    assert budget.in_use == 90 * MP
    for r in releases:
        r.set()


def test_a_decode_that_does_not_fit_waits_for_room() -> None:
    budget, log = DecodeBudget(100 * MP), []
    first = start(budget, 60 * MP, log, "first")
    settle()
    second = start(budget, 60 * MP, log, "second")
    settle()
    assert log == ["first"]

    first.set()
    settle()

    assert log == ["first", "second"]
    second.set()


def test_an_image_larger_than_the_budget_runs_alone() -> None:
    budget, log = DecodeBudget(50 * MP), []
    small = start(budget, 10 * MP, log, "small")
    settle()
    huge = start(budget, 100 * MP, log, "huge")
    settle()
    assert log == ["small"]  # waits for the whole budget
    small.set()
    settle()
    assert log == ["small", "huge"]

    after = start(budget, 1 * MP, log, "after")
    settle()
    assert log == ["small", "huge"]  # nothing runs beside it
    huge.set()
    settle()
    assert log == ["small", "huge", "after"]
    after.set()


def test_waiters_are_admitted_in_arrival_order() -> None:
    budget, log = DecodeBudget(100 * MP), []
    running = start(budget, 60 * MP, log, "running")
    settle()
    large = start(budget, 80 * MP, log, "large")  # waits for room
    settle()
    small = start(budget, 10 * MP, log, "small")  # would fit now, but queues behind it
    settle()
    assert log == ["running"]

    running.set()
    settle()

    assert log == ["running", "large", "small"]
    large.set()
    small.set()


def test_validation_asks_the_budget_for_the_header_size_before_decoding() -> None:
    asked: list[int] = []

    @contextmanager
    def admit(pixels: int) -> Iterator[None]:
        asked.append(pixels)
        yield

    media = validate_media(jpeg(640, 480), LimitsSettings(), admit)

    assert media.width == 640
    assert asked == [640 * 480]


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DecodeBudget(0)
