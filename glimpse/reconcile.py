"""Reconcile: the bucket listing against media rows, to close lost-notification gaps.

S3 servers may drop upload notifications while the broker is down (SeaweedFS's
Kafka notifier is at-most-once). Every object whose current version has no media
row, and every row whose object is gone, becomes a synthetic event on the objects
topic; ingest handles it like any other, idempotently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from kafka import KafkaProducer

from glimpse.bus import OutboundMessage, send_all
from glimpse.db import media
from glimpse.events import DERIVED_PREFIXES, ObjectAction, ObjectEvent, s3_event_json
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    listed: int
    created: int
    deleted: int


def missing_events(
    store: ObjectStore, conn: psycopg.Connection[Any]
) -> tuple[int, list[ObjectEvent]]:
    """(objects listed, events that would bring media rows in line with the bucket)."""
    known = media.known_versions(conn, store.bucket)
    events: list[ObjectEvent] = []
    listed = 0
    seen: set[str] = set()
    for obj in store.list():
        if obj.key.startswith(DERIVED_PREFIXES):
            continue
        listed += 1
        seen.add(obj.key)
        if obj.key not in known or known[obj.key] != obj.etag:
            events.append(
                ObjectEvent(
                    ObjectAction.CREATED,
                    store.bucket,
                    obj.key,
                    obj.size,
                    obj.etag,
                    obj.last_modified,
                    "reconcile",
                )
            )
    events.extend(
        ObjectEvent(ObjectAction.DELETED, store.bucket, key, None, None, None, "reconcile")
        for key in known.keys() - seen
    )
    return listed, events


def reconcile(
    store: ObjectStore,
    conn: psycopg.Connection[Any],
    producer: KafkaProducer,
    topic: str,
) -> ReconcileReport:
    listed, events = missing_events(store, conn)
    for start in range(0, len(events), _CHUNK):
        chunk = events[start : start + _CHUNK]
        send_all(
            producer,
            [OutboundMessage(topic, e.key.encode(), s3_event_json([e])) for e in chunk],
            timeout_s=60,
        )
    report = ReconcileReport(
        listed=listed,
        created=sum(e.action is ObjectAction.CREATED for e in events),
        deleted=sum(e.action is ObjectAction.DELETED for e in events),
    )
    log.info(
        "reconcile: %d objects listed, %d created and %d deleted events re-sent",
        report.listed,
        report.created,
        report.deleted,
    )
    return report
