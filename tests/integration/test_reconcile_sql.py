"""reconcile against real Postgres: keyset pages in S3's order, and no work redone.

The bucket is a stand-in that lists what a test says (S3 lists in UTF-8 byte order);
the rows are real, in a bucket name of their own; events are captured, not produced.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from harness import RunningStack
from helpers import connect, store_of
from kafka.errors import KafkaConnectionError

from glimpse.db import backfill_jobs, media
from glimpse.db.backfill_jobs import JobSpec
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.events import parse_object_events
from glimpse.reconcile import reconcile
from glimpse.storage import ObjectInfo

pytestmark = pytest.mark.integration
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def byte_order(key: str) -> str:
    return key  # AWS S3


def folder_order(key: str) -> list[str]:
    return key.split("/")  # SeaweedFS: "a/b" before "a-c"


@dataclass
class ListedBucket:
    bucket: str
    objects: dict[str, str]  # key → etag
    during_listing: list[Any] = field(default_factory=list)  # run after the first object
    order: Callable[[str], Any] = byte_order

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for i, key in enumerate(sorted(self.objects, key=self.order)):
            yield ObjectInfo(key, 1, self.objects[key], WHEN)
            if i == 0:
                for step in self.during_listing:
                    step()

    def head(self, key: str) -> ObjectInfo | None:
        return ObjectInfo(key, 1, self.objects[key], WHEN) if key in self.objects else None


@dataclass
class Sent:
    offset: int  # where the broker stored it

    def get(self, timeout: float) -> Sent:
        return self


@dataclass
class CapturingProducer:
    messages: list[bytes] = field(default_factory=list)

    def send(self, topic: str, key: bytes, value: bytes) -> Sent:
        self.messages.append(value)
        return Sent(len(self.messages) - 1)

    def flush(self, timeout: float) -> None:
        return None

    def events(self) -> list[tuple[str, str]]:
        found = [e for m in self.messages for e in parse_object_events(None, m)]
        return sorted((e.action.value, e.key) for e in found)


@pytest.fixture
def conn(stack: RunningStack) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with connect(stack.settings) as c:
        yield c


def bucket_name() -> str:
    return f"reconcile-{uuid.uuid4().hex[:8]}"


def add_row(conn: psycopg.Connection[Any], bucket: str, key: str, etag: str) -> None:
    media.save(conn, MediaRow(bucket=bucket, key=key, status=MediaStatus.ACCEPTED, etag=etag))


@pytest.mark.parametrize("order", [byte_order, folder_order])
def test_small_pages_over_many_objects_find_every_difference(
    conn: psycopg.Connection[dict[str, Any]], order: Callable[[str], Any]
) -> None:
    bucket = bucket_name()
    # 14 objects (pages of 3 rows), keys whose byte order differs from a locale's
    keys = ["B.png", "a-c.png", "a.png", "a/b.png", "été.png", "ü/x.png"]
    keys += [f"n/{i:02}.png" for i in range(8)]
    objects = dict.fromkeys(keys, "same")
    for key in keys:
        add_row(conn, bucket, key, "same")
    objects["a/b.png"] = "changed"  # overwritten while its notification was lost
    objects["new.png"] = "e"  # uploaded while its notification was lost
    add_row(conn, bucket, "a/gone.png", "x")  # deleted while the broker was down
    add_row(conn, bucket, "zz-gone.png", "x")
    # folder markers and glimpse's own objects are listed but are no uploads
    for derived in ("photos/", "n/", "thumbnails/ab/abc.jpg", "queries/q.webm", ".glimpse/ready"):
        objects[derived] = "d"
    producer = CapturingProducer()

    listed = ListedBucket(bucket, objects, order=order)

    report = reconcile(listed, conn, producer, "objects", page_size=3)

    assert producer.events() == [
        ("created", "a/b.png"),
        ("created", "new.png"),
        ("deleted", "a/gone.png"),
        ("deleted", "zz-gone.png"),
    ]
    assert (report.listed, report.created, report.deleted) == (15, 2, 2)


def test_nothing_to_do_sends_nothing_even_with_folder_markers(
    conn: psycopg.Connection[dict[str, Any]],
) -> None:
    bucket = bucket_name()
    for i in range(7):
        add_row(conn, bucket, f"k/{i}.png", "e")
    objects = {f"k/{i}.png": "e" for i in range(7)} | {"k/": "", "thumbnails/x.jpg": "t"}
    producer = CapturingProducer()

    for _ in range(2):  # a second run re-sends nothing either
        report = reconcile(ListedBucket(bucket, objects), conn, producer, "objects", page_size=3)
        assert (report.listed, report.created, report.deleted) == (7, 0, 0)
    assert producer.messages == []


def test_objects_ingested_while_the_pass_runs_are_not_sent_again(
    stack: RunningStack, conn: psycopg.Connection[dict[str, Any]]
) -> None:
    bucket = bucket_name()
    objects = {"a.png": "e", "m.png": "e", "b-late.png": "e", "z.png": "e"}

    def ingest_meanwhile() -> None:
        with connect(stack.settings) as other:
            add_row(other, bucket, "m.png", "e")  # its event arrived after all
            add_row(other, bucket, "a-late.png", "e")  # uploaded behind the listing

    listed = ListedBucket(bucket, objects, during_listing=[ingest_meanwhile])
    producer = CapturingProducer()

    reconcile(listed, conn, producer, "objects", page_size=3)

    assert producer.events() == [
        ("created", "a.png"),
        ("created", "b-late.png"),
        ("created", "z.png"),
    ]


def test_objects_a_running_ingest_backfill_job_covers_are_left_to_it(
    conn: psycopg.Connection[dict[str, Any]],
) -> None:
    bucket = bucket_name()
    held = f"backfilled-{uuid.uuid4().hex[:6]}/"
    objects = {f"{held}a.png": "e", f"{held}b.png": "e", "elsewhere/c.png": "e"}
    add_row(conn, bucket, f"{held}gone.png", "x")  # deleted: a backfill lists only what is
    job = backfill_jobs.create(conn, JobSpec("ingest", "missing", prefix=held))  # running
    try:
        producer = CapturingProducer()
        report = reconcile(ListedBucket(bucket, objects), conn, producer, "objects")

        assert producer.events() == [
            ("created", "elsewhere/c.png"),
            ("deleted", f"{held}gone.png"),
        ]
        assert report.left_to_backfill == 2
    finally:
        backfill_jobs.finish(conn, job.id, "done")

    producer = CapturingProducer()  # the job is over: what it left undone is reconcile's
    reconcile(ListedBucket(bucket, objects), conn, producer, "objects")
    assert [key for _, key in producer.events()] == [
        f"{held}a.png",
        f"{held}b.png",
        "elsewhere/c.png",
        f"{held}gone.png",
    ]


def test_a_finished_jobs_objects_are_left_to_its_queued_events_while_ingest_has_a_backlog(
    conn: psycopg.Connection[dict[str, Any]],
) -> None:
    """`glimpse backfill --no-wait` is done once it has sent everything; behind a backlog
    its objects stay without rows for many passes, and must not be sent again."""
    bucket = bucket_name()
    held = f"queued-{uuid.uuid4().hex[:6]}/"
    objects = {f"{held}a.png": "e", "elsewhere/c.png": "e"}
    job = backfill_jobs.create(conn, JobSpec("ingest", "missing", prefix=held))
    backfill_jobs.finish(conn, job.id, "done")

    def sent_with(backlog: Callable[[], int]) -> list[str]:
        producer = CapturingProducer()
        reconcile(ListedBucket(bucket, objects), conn, producer, "objects", ingest_backlog=backlog)
        return [key for _, key in producer.events()]

    def broker_away() -> int:
        raise KafkaConnectionError("the broker is away")

    assert sent_with(lambda: 120) == ["elsewhere/c.png"]
    # drained: whatever still has no row was lost, and is sent
    assert sent_with(lambda: 0) == ["elsewhere/c.png", f"{held}a.png"]
    # unknown: sent (at worst twice, which ingest skips), never held on a guess
    assert sent_with(broker_away) == ["elsewhere/c.png", f"{held}a.png"]
    # a job done long ago holds nothing, however busy the topic is again
    conn.execute(
        "UPDATE backfill_jobs SET finished_at = now() - interval '2 days' WHERE id = %(id)s",
        {"id": job.id},
    )
    assert sent_with(lambda: 120) == ["elsewhere/c.png", f"{held}a.png"]


def test_the_embedded_store_lists_keys_folder_by_folder(stack: RunningStack) -> None:
    """Why events are re-checked before sending: SeaweedFS does not list in AWS's byte
    order but walks folders ("a/b" before "a-c", though "-" < "/")."""
    store = store_of(stack.settings)
    keys = ["order/a/b.png", "order/a-c.png", "order/B.png", "order/été.png", "order/a.png"]
    for key in keys:
        store.put(key, b"x", "application/octet-stream")

    listed = [o.key for o in store.list("order/")]

    assert listed == sorted(keys, key=folder_order)
    assert listed != sorted(keys)
