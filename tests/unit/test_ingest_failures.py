"""What ingest records when the runtime dead-letters one of its messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from doubles import MemoryStore
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool

from glimpse.bus import InboundMessage
from glimpse.config import DatabaseSettings, KafkaSettings, LimitsSettings
from glimpse.db import media
from glimpse.db.pool import open_pool
from glimpse.errors import WorkerCrashed
from glimpse.events import ObjectAction, ObjectEvent, s3_event_json
from glimpse.metrics import IngestMetrics
from glimpse.runtime import DeadLetter
from services.ingest.handler import IngestHandler


@pytest.fixture
def pool(postgres: str) -> Iterator[ConnectionPool[psycopg.Connection[Any]]]:
    with open_pool(DatabaseSettings(url=postgres), "ingest-test") as pool:
        yield pool


@pytest.fixture
def handler(pool: ConnectionPool[psycopg.Connection[Any]]) -> Iterator[IngestHandler]:
    ingest = IngestHandler(
        MemoryStore().as_store(),
        pool,
        LimitsSettings(),
        KafkaSettings(),
        IngestMetrics(CollectorRegistry()),
    )
    yield ingest
    ingest.close()  # its pool too; closing twice is harmless


def upload_event(key: str) -> InboundMessage:
    event = ObjectEvent(ObjectAction.CREATED, "media", key, 10, "e1", None, "s3")
    return InboundMessage("glimpse.objects", 0, 7, None, s3_event_json([event]), 0)


def test_an_upload_that_killed_the_worker_is_failed_with_reason_crashed_worker(
    handler: IngestHandler, pool: ConnectionPool[psycopg.Connection[Any]]
) -> None:
    incoming = upload_event("huge/panorama.png")

    handler.record_failure(incoming, DeadLetter.of("ingest", incoming, WorkerCrashed(3), 3))

    with pool.connection() as conn:
        row = media.get(conn, media.media_id("media", "huge/panorama.png"))
    assert row is not None
    assert (row["status"], row["reason"]) == ("failed", "crashed_worker")
    assert row["reason_detail"] == "ingest: the worker died 3 times while processing this item"


def test_recording_an_unparseable_event_does_not_raise(handler: IngestHandler) -> None:
    # The handler dead-lettered it as malformed; recording it must not fail again.
    nested = InboundMessage("glimpse.objects", 0, 8, None, b"[" * 200_000, 0)
    letter = DeadLetter.of("ingest", nested, ValueError("malformed"), 1)

    handler.record_failure(nested, letter)  # nothing to attach it to: the DLQ is the record
