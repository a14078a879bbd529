"""`glimpse dlq retry`: send dead-lettered items through their stage again.

Items go where a backfill would send them (the stage's backfill topic): an item whose
media row was marked failed (ingest, or transcribe, which fails the whole audio item)
is ingested again from the bucket; any other is announced to its stage again from
what Postgres holds. Re-driven failures get ``retried_at``; a new failure clears it,
a success deletes the failure.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from kafka import KafkaProducer

from glimpse.backfill import BackfillError, enqueue_counted, ingest_again, stage_work
from glimpse.config import KafkaSettings
from glimpse.db import failures
from glimpse.db.backfill_jobs import as_stage
from glimpse.db.backlog import Scope
from glimpse.db.failures import Failure, Selection
from glimpse.storage import ObjectStore

_BATCH = 1000


def redrive(
    conn: psycopg.Connection[Any],
    producer: KafkaProducer,
    store: ObjectStore,
    kafka: KafkaSettings,
    which: Selection,
) -> dict[str, int]:
    """Re-drive every failure ``which`` selects; how many items went to each stage."""
    sent: dict[str, int] = defaultdict(int)
    while found := failures.select(conn, which, limit=_BATCH):
        by_stage: dict[str, list[Failure]] = defaultdict(list)
        for failure in found:
            by_stage["ingest" if failure.media_status == "failed" else failure.stage].append(
                failure
            )
        for stage, items in by_stage.items():
            if stage == "ingest":
                sent[stage] += ingest_again(producer, store, kafka, [f.key for f in items])
            else:
                sent[stage] += _announce_again(conn, producer, store, kafka, stage, items)
        for failure in found:
            failures.mark_retried(conn, failure.stage, [failure.media_id])
    return dict(sent)


def _announce_again(
    conn: psycopg.Connection[Any],
    producer: KafkaProducer,
    store: ObjectStore,
    kafka: KafkaSettings,
    stage: str,
    items: list[Failure],
) -> int:
    ids = tuple(f.media_id for f in items)
    # every item of the selection, whatever its age (the cutoff is tomorrow)
    scope = Scope(store.bucket, datetime.now(UTC) + timedelta(days=1), ids=ids)
    try:
        work = stage_work(conn, as_stage(stage), "all", scope, kafka, store)
    except BackfillError:
        return 0  # no worker of the stage ever ran: nothing can take it
    return enqueue_counted(work, conn, producer, threading.Event())
