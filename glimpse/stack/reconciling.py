"""When the embedded stack runs reconcile: at start, after restarts, and periodically;
and stage repair, periodically.

Notifications are dropped while the broker or the media store is down (and for about
a second after), so each restart of one of them schedules a pass; a pass that fails
because something else is still down is retried with backoff until it gets through.
Repair (``glimpse.backfill.repair``) catches what is lost after ingest: a message the
broker lost in a crash, a dead letter whose cause is gone.
"""

from __future__ import annotations

import logging
import threading

from glimpse.backfill import repair
from glimpse.bus import make_producer
from glimpse.config import Settings
from glimpse.db.pool import open_pool
from glimpse.reconcile import ReconcileReport, reconcile_deployment
from glimpse.stack import periodic
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)

#: after a restart: once the pass got through, once more this much later (events the
#: notifier dropped in the first second after the restart)
AGAIN_AFTER_S = 5.0


class Reconciler:
    """Runs reconcile passes for resolved settings ``s``, one at a time."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.reports: list[ReconcileReport] = []
        self.repairs: list[dict[str, int]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def run_once(self) -> ReconcileReport:
        s = self.settings
        with self._lock, open_pool(s.database, "reconcile") as pool:
            producer = make_producer(s.kafka)
            try:
                with pool.connection() as conn:
                    report = reconcile_deployment(ObjectStore(s.s3), conn, producer, s.kafka)
                self.reports.append(report)
                return report
            finally:
                producer.close(10)

    def soon(self) -> None:
        """In the background: a pass as soon as one can get through, then another."""

        def run() -> None:
            done = periodic.until_done(self.run_once, "reconcile", self._stopping)
            if done and not self._stopping.wait(AGAIN_AFTER_S):
                periodic.until_done(self.run_once, "reconcile", self._stopping)

        threading.Thread(target=run, name="reconcile-after-restart", daemon=True).start()

    def every(self, interval_s: float) -> None:
        """In the background: a pass every ``interval_s`` (0: never)."""
        periodic.every("reconcile", interval_s, self.run_once, self._stopping)

    def repair_once(self, older_than_s: float) -> dict[str, int]:
        s = self.settings
        with open_pool(s.database, "repair") as pool, pool.connection() as conn:
            producer = make_producer(s.kafka)
            try:
                sent = repair(conn, producer, ObjectStore(s.s3), s.kafka, older_than_s,
                              self._stopping, s.limits)  # fmt: skip
            finally:
                producer.close(10)
        counts = {str(stage): n for stage, n in sent.items()}
        self.repairs.append(counts)
        return counts

    def repair_every(self, interval_s: float, older_than_s: float) -> None:
        """In the background: a stage-repair pass every ``interval_s`` (0: never)."""
        periodic.every("repair", interval_s, lambda: self.repair_once(older_than_s), self._stopping)

    def stop(self) -> None:
        self._stopping.set()
