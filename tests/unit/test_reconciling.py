"""When the embedded stack reconciles: after a restart until a pass gets through, then
once more; and periodically."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from glimpse.config import Settings
from glimpse.reconcile import ReconcileReport
from glimpse.stack import reconciling
from glimpse.stack.reconciling import Reconciler


class CountingReconciler(Reconciler):
    """A reconciler whose passes fail ``failures`` times (Postgres still down), then pass."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__(Settings())
        self.failures = failures
        self.attempts = 0

    def run_once(self) -> ReconcileReport:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("postgres is restarting")
        report = ReconcileReport(listed=0, created=0, deleted=0)
        self.reports.append(report)
        return report


def eventually(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_after_a_restart_it_retries_until_a_pass_gets_through_then_runs_once_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reconciling, "AGAIN_AFTER_S", 0.1)
    reconciler = CountingReconciler(failures=2)
    try:
        reconciler.soon()
        eventually(lambda: len(reconciler.reports) == 2)
        assert reconciler.attempts == 4  # two failed, one through, one 0.1 s later
    finally:
        reconciler.stop()


def test_it_runs_periodically() -> None:
    reconciler = CountingReconciler()
    try:
        reconciler.every(0.05)
        eventually(lambda: len(reconciler.reports) >= 3)
    finally:
        reconciler.stop()


def test_an_interval_of_zero_turns_the_periodic_pass_off() -> None:
    reconciler = CountingReconciler()
    reconciler.every(0)
    time.sleep(0.1)
    assert reconciler.attempts == 0
