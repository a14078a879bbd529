"""A worker process whose handler kills its own process on the value ``die``, as the
kernel's out-of-memory killer would: no exception, no cleanup, no commit.

    python tests/crash_worker.py BOOTSTRAP DATABASE_URL RECORD_FILE

Other values are uppercased to ``crash.out``. Dead letters the runtime asks it to
record are appended to RECORD_FILE as JSON lines. SIGTERM stops it cleanly (exit 0).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from glimpse.bus import InboundMessage, OutboundMessage, make_consumer, make_producer
from glimpse.config import DatabaseSettings, KafkaSettings, WorkerSettings
from glimpse.db.attempts import PostgresAttemptLog
from glimpse.db.pool import open_pool
from glimpse.metrics import WorkerMetrics
from glimpse.runtime import DeadLetter, Done, ItemResult, ServiceSpec, Worker

IN, OUT = "crash.in", "crash.out"
SPEC = ServiceSpec("crashy", (IN,))
KILLED = 137  # what a SIGKILLed process reports


class DyingHandler:
    def __init__(self, record: Path) -> None:
        self.record = record

    def handle(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        if any(m.value == b"die" for m in batch):
            os._exit(KILLED)
        return [Done([OutboundMessage(OUT, m.key, m.value.upper())]) for m in batch]

    def record_failure(self, message: InboundMessage, letter: DeadLetter) -> None:
        with self.record.open("a") as f:
            f.write(letter.to_json().decode() + "\n")

    def close(self) -> None:
        return


def main(bootstrap: str, database_url: str, record: str) -> None:
    kafka = KafkaSettings(bootstrap=bootstrap, partitions=1)
    attempts = PostgresAttemptLog(open_pool(DatabaseSettings(url=database_url), "crashy"))
    worker = Worker(
        SPEC,
        DyingHandler(Path(record)),
        make_consumer(kafka, SPEC.group, SPEC.input_topics),
        make_producer(kafka),
        kafka,
        WorkerSettings(max_batch=4, max_wait_ms=300, backoff_initial_s=0.05, backoff_max_s=0.2),
        WorkerMetrics(),
        attempts,
    )
    signal.signal(signal.SIGTERM, lambda *_: worker.request_stop())
    worker.run()
    worker.consumer.close(autocommit=False)
    worker.producer.close()
    attempts.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
