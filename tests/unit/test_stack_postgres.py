"""The embedded Postgres' settings (glimpse.stack.postgres)."""

from __future__ import annotations

import pytest

from glimpse.stack.postgres import index_build_workers


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 0), (4, 2), (16, 14)])
def test_an_index_build_leaves_one_core_to_searches(cores: int, workers: int) -> None:
    # the building process itself plus its workers: every core but one
    assert index_build_workers(cores) == workers
    assert 1 + workers <= max(1, cores - 1)
