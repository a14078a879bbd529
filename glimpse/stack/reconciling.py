"""When the embedded stack runs reconcile: at start, after restarts, and periodically.

Notifications are dropped while the broker or the media store is down (and for about
a second after), so each restart of one of them schedules a pass; a pass that fails
because something else is still down is retried with backoff until it gets through.
"""

from __future__ import annotations

import logging
import threading

from glimpse.bus import make_producer
from glimpse.config import Settings
from glimpse.db.pool import open_pool
from glimpse.errors import backoff_delay
from glimpse.reconcile import ReconcileReport, reconcile
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
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def run_once(self) -> ReconcileReport:
        s = self.settings
        with self._lock, open_pool(s.database, "reconcile") as pool:
            producer = make_producer(s.kafka)
            try:
                with pool.connection() as conn:
                    report = reconcile(ObjectStore(s.s3), conn, producer, s.kafka.objects_topic)
                self.reports.append(report)
                return report
            finally:
                producer.close(10)

    def soon(self) -> None:
        """In the background: a pass as soon as one can get through, then another."""

        def run() -> None:
            if self._until_done() and not self._stopping.wait(AGAIN_AFTER_S):
                self._until_done()

        threading.Thread(target=run, name="reconcile-after-restart", daemon=True).start()

    def every(self, interval_s: float) -> None:
        """In the background: a pass every ``interval_s`` (0: never)."""
        if interval_s <= 0:
            return

        def run() -> None:
            while not self._stopping.wait(interval_s):
                self._until_done()

        threading.Thread(target=run, name="reconcile-periodic", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def _until_done(self, max_delay_s: float = 10.0) -> bool:
        attempt = 0
        while not self._stopping.is_set():
            try:
                self.run_once()
                return True
            except Exception as exc:
                attempt += 1
                delay = backoff_delay(attempt, 0.5, max_delay_s)
                log.warning("reconcile failed (%r); retry in %.1fs", exc, delay)
                self._stopping.wait(delay)
        return False
