"""An item that kills its worker process is dead-lettered after ``worker.max_crashes``
deaths, instead of being re-delivered to worker after worker forever.

Real processes, a real (in-memory) broker and a real Postgres: the handler in
tests/crash_worker.py ends its own process with ``os._exit`` on the item ``die``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
from bus_helpers import produce, read_all
from crash_worker import IN, KILLED, OUT, SPEC

from glimpse.bus import ensure_topics
from glimpse.config import KafkaSettings

WORKER = Path(__file__).parents[1] / "crash_worker.py"


def test_an_item_that_kills_its_worker_is_dead_lettered_after_three_deaths(
    memory_broker: str, postgres: str, tmp_path: Path
) -> None:
    kafka = KafkaSettings(bootstrap=memory_broker, partitions=1)
    ensure_topics(kafka, [IN, OUT, kafka.dlq_topic])
    produce(kafka, IN, [b"a", b"die", b"b"])
    record = tmp_path / "recorded.jsonl"
    argv = [sys.executable, str(WORKER), memory_broker, postgres, str(record)]

    deaths = [subprocess.run(argv, timeout=180, check=False).returncode for _ in range(3)]
    assert deaths == [KILLED] * 3

    survivor = subprocess.Popen(argv)
    try:
        letters = [json.loads(v) for v in read_all(kafka, kafka.dlq_topic, 1, timeout_s=120)]
        outputs = set(read_all(kafka, OUT, 2, timeout_s=60))
    finally:
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=60) == 0

    assert len(letters) == 1
    letter = letters[0]
    assert letter["reason"] == "crashed_worker"
    assert letter["message"] == "the worker died 3 times while processing this item"
    assert (letter["offset"], letter["value"], letter["attempts"]) == (1, "die", 3)
    # the handler recorded it where users look (ingest: the media row)
    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(r["reason"], r["offset"]) for r in recorded] == [("crashed_worker", 1)]
    # the items delivered beside it were not blamed
    assert outputs == {b"A", b"B"}
    with psycopg.connect(postgres) as conn:
        left = conn.execute(
            "SELECT count(*) FROM delivery_attempts WHERE consumer_group = %(g)s",
            {"g": SPEC.group},
        ).fetchone()
    assert left == (0,)
