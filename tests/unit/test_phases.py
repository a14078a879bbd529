"""Phases: seconds per named step of one request."""

from __future__ import annotations

import pytest

from glimpse.phases import Phases


def test_each_phase_is_timed_and_repeats_add_up() -> None:
    phases = Phases()
    with phases.phase("vector_sql"):
        pass
    first = phases.seconds["vector_sql"]
    with phases.phase("vector_sql"):
        sum(range(10_000))
    assert phases.seconds["vector_sql"] > first
    assert set(phases.seconds) == {"vector_sql"}


def test_a_failed_phase_still_counts_its_time() -> None:
    phases = Phases()
    with pytest.raises(TimeoutError), phases.phase("keyword_sql"):
        raise TimeoutError
    assert phases.seconds["keyword_sql"] >= 0
