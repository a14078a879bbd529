"""Reconcile: the bucket listing against media rows, to close lost-notification gaps.

S3 servers may drop upload notifications while the broker is down (SeaweedFS's
Kafka notifier is at-most-once). Every object whose current version has no media
row, and every row whose object is gone, becomes a synthetic event on the objects
topic; ingest handles it like any other, idempotently.

Memory stays bounded whatever the bucket's size: S3 lists keys in UTF-8 byte order,
one page at a time, and the rows are read in keyset pages in the same order
(``COLLATE "C"``), so the two streams are merged like sorted files. Events go out in
chunks as they are found.

Objects under the prefix of a running `glimpse backfill --stage ingest` job are left to
the job, which lists them and sends what has no row too: bench.backfill over 10,000
objects measured a periodic pass queueing thousands of them a second time behind it.

Every event is checked just before it is sent, which also makes the pass correct for
a store that lists in another order (SeaweedFS walks folders: ``a/b`` before ``a-c``,
though ``-`` < ``/``): a created event is dropped if its key has a row with that ETag
by then (ingested meanwhile, or a row the merge passed too early), a deleted event if
the object exists (re-created meanwhile, or listed out of order). A row written after
the listing began is never taken for a deleted object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import psycopg
from kafka import KafkaProducer
from kafka.errors import KafkaError

from glimpse.bus import OutboundMessage, send_all
from glimpse.config import KafkaSettings
from glimpse.db import backfill_jobs, media
from glimpse.db.media import KnownVersion
from glimpse.events import DERIVED_PREFIXES, ObjectAction, ObjectEvent, s3_event_json
from glimpse.group_lag import backlog
from glimpse.stages import backfill_group_of, backfill_topics_of
from glimpse.storage import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)
_CHUNK = 500
PAGE_SIZE = 1000
# How long after it finished enqueuing a backfill job's objects may still be queued: a
# bound, so that an old job's prefix is not held whenever the topic is busy again.
QUEUED_JOB_WINDOW_S = 24 * 3600.0
Backlog = Callable[[], int]  # messages waiting on a topic for its consumer group


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    listed: int
    created: int
    deleted: int
    left_to_backfill: int = 0  # created events a running ingest backfill job sends


class Uploads:
    """The listing without glimpse's own objects and folder markers; counts them."""

    def __init__(self, listing: Iterable[ObjectInfo]) -> None:
        self._listing = listing
        self.count = 0

    def __iter__(self) -> Iterator[ObjectInfo]:
        for obj in self._listing:
            if obj.key.endswith("/") or obj.key.startswith(DERIVED_PREFIXES):
                continue
            self.count += 1
            yield obj


def compare(
    listing: Iterable[ObjectInfo],
    known: Iterable[KnownVersion],
    *,
    bucket: str,
    listing_began: datetime,
) -> Iterator[ObjectEvent]:
    """Events that bring the rows in line with the bucket; both inputs in key order.

    Python compares ``str`` by code point, which is the UTF-8 byte order of S3 and of
    ``COLLATE "C"``. Should a store list out of order, the harm is bounded: created
    events are re-checked before sending and ingest checks a delete with a HEAD.
    """
    rows = iter(known)
    row = next(rows, None)
    for obj in listing:
        while row is not None and row.key < obj.key:
            if row.updated_at < listing_began:  # newer rows may be objects listed too early
                yield _event(ObjectAction.DELETED, bucket, row.key)
            row = next(rows, None)
        if row is not None and row.key == obj.key:
            if row.etag != obj.etag:
                yield _event(ObjectAction.CREATED, bucket, obj.key, obj)
            row = next(rows, None)
        else:
            yield _event(ObjectAction.CREATED, bucket, obj.key, obj)
    while row is not None:
        if row.updated_at < listing_began:
            yield _event(ObjectAction.DELETED, bucket, row.key)
        row = next(rows, None)


def events_topic(kafka: KafkaSettings) -> str:
    """Where reconcile's events go: ingest's backfill topic. What a pass finds can be the
    whole bucket (glimpse started on a bucket that already holds photos, rows deleted);
    on the live topic every live upload would wait behind it: bench.backfill over 10,000
    objects measured a live upload waiting 4.5 min at ingest behind 11,000 re-sent events.
    Backfill work is read whenever no live upload waits, so a handful of lost
    notifications are as quick there on an idle stack."""
    return kafka.backfill_objects_topic


def ingest_backlog(kafka: KafkaSettings) -> Backlog | None:
    """What waits on ingest's backfill topic, read from the broker when called (None:
    no broker configured)."""
    if not kafka.bootstrap:
        return None
    topics = backfill_topics_of(kafka)["ingest"]
    return partial(backlog, kafka.bootstrap, backfill_group_of("ingest"), topics)


def reconcile_deployment(
    store: ObjectStore, conn: psycopg.Connection[Any], producer: KafkaProducer, kafka: KafkaSettings
) -> ReconcileReport:
    """A pass as glimpse runs it (the stack, `glimpse reconcile`): events to ingest's
    backfill topic, reading its backlog from the broker."""
    return reconcile(
        store, conn, producer, events_topic(kafka), ingest_backlog=ingest_backlog(kafka)
    )


def reconcile(
    store: ObjectStore,
    conn: psycopg.Connection[Any],
    producer: KafkaProducer,
    topic: str,
    *,
    page_size: int = PAGE_SIZE,
    ingest_backlog: Backlog | None = None,
) -> ReconcileReport:
    """Send a created event for each upload without a row of its version and a deleted
    event for each row whose object is gone. ``ingest_backlog``: the messages waiting on
    ingest's backfill topic, to leave the objects of finished backfill jobs to their
    queued events while it has any."""
    began = _database_clock(conn)  # updated_at comes from the same clock
    listing = Uploads(store.list())
    events = compare(
        listing,
        media.known_versions(conn, store.bucket, page_size),
        bucket=store.bucket,
        listing_began=began,
    )
    queued = _queued_job_prefixes(conn, ingest_backlog)
    created = deleted = left = 0
    for chunk in _chunks(events, _CHUNK):
        # The listing is minutes old at 10M objects: leave what a backfill job started
        # meanwhile covers (before the checks below: its objects need none of them),
        # and skip what was ingested meanwhile.
        held = (*backfill_jobs.running_ingest_prefixes(conn), *queued)
        ours = [e for e in chunk if not _left_to_backfill(e, held)]
        left += len(chunk) - len(ours)
        due = _still_due(store, conn, ours)
        send_all(
            producer,
            [OutboundMessage(topic, e.key.encode(), s3_event_json([e])) for e in due],
            timeout_s=60,
        )
        created += sum(e.action is ObjectAction.CREATED for e in due)
        deleted += sum(e.action is ObjectAction.DELETED for e in due)
    report = ReconcileReport(listing.count, created, deleted, left)
    log.info(
        "reconcile: %d objects listed, %d created and %d deleted events re-sent, "
        "%d left to running backfill jobs",
        report.listed,
        report.created,
        report.deleted,
        report.left_to_backfill,
    )
    return report


def _queued_job_prefixes(
    conn: psycopg.Connection[Any], waiting_on_ingest: Backlog | None
) -> tuple[str, ...]:
    """The prefixes of ingest backfill jobs done enqueuing whose events may still wait on
    ingest's backfill topic: a job is done once it has *sent* everything, and behind a
    backlog its objects stay without rows for many reconcile passes (bench/backfill.py
    at 10,000 objects: 6 passes sent 28,533 created events beside the job's 10,000).
    Unknown backlog: none held (at worst an object is sent twice; ingest skips it)."""
    if waiting_on_ingest is None:
        return ()
    try:
        waiting = waiting_on_ingest()
    except (KafkaError, TimeoutError, OSError) as exc:
        log.warning("reconcile: ingest's backfill backlog unknown (%s): holding nothing", exc)
        return ()
    if not waiting:
        return ()
    return tuple(backfill_jobs.ingest_prefixes_done_within(conn, QUEUED_JOB_WINDOW_S))


def _left_to_backfill(event: ObjectEvent, job_prefixes: tuple[str, ...]) -> bool:
    """Whether an ingest backfill job sends ``event``'s object itself (running) or has
    sent it (queued). Deletes are reconcile's alone (a backfill only lists what is there)."""
    return event.action is ObjectAction.CREATED and event.key.startswith(job_prefixes)


def _still_due(
    store: ObjectStore, conn: psycopg.Connection[Any], chunk: list[ObjectEvent]
) -> list[ObjectEvent]:
    """The events of ``chunk`` that the bucket and the rows still call for now."""
    creates = [e.key for e in chunk if e.action is ObjectAction.CREATED]
    current = media.current_etags(conn, store.bucket, creates) if creates else {}
    due = []
    for e in chunk:
        if e.action is ObjectAction.CREATED:
            if e.key not in current or current[e.key] != e.etag:
                due.append(e)
        elif store.head(e.key) is None:  # deletes are few: one HEAD each
            due.append(e)
    return due


def _event(
    action: ObjectAction, bucket: str, key: str, obj: ObjectInfo | None = None
) -> ObjectEvent:
    if obj is None:
        return ObjectEvent(action, bucket, key, None, None, None, "reconcile")
    return ObjectEvent(action, bucket, key, obj.size, obj.etag, obj.last_modified, "reconcile")


def _chunks(events: Iterable[ObjectEvent], size: int) -> Iterator[list[ObjectEvent]]:
    chunk: list[ObjectEvent] = []
    for event in events:
        chunk.append(event)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _database_clock(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT clock_timestamp() AS now").fetchone()
    assert row is not None
    now: datetime = row["now"] if isinstance(row, dict) else row[0]
    return now
