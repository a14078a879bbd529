"""Backfill and stage repair: find a stage's work, enqueue it on the stage's backfill
topic page by page, and advance a cursor only after the broker acknowledged the page.

- Later stages find their work in Postgres (``glimpse.db.backlog``), ingest in the
  bucket listing (key order). The work is for the models the workers run now.
- Workers read backfill topics only while live uploads are quiet (``glimpse.runtime``).
- A job (``glimpse.db.backfill_jobs``) keeps its cursor in Postgres: stopped or killed
  and run again, it continues after the last page it enqueued. Killed between the ack
  and the cursor write, one page goes out again; handlers skip work already done.
- Repair is the same walk without a row: every stage, ``--missing``, for items older
  than the repair age, so messages lost in a crash and dead letters whose cause is
  gone are announced again.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg
from kafka import KafkaProducer

from glimpse.bus import OutboundMessage, send_all
from glimpse.config import KafkaSettings, LimitsSettings
from glimpse.db import backfill_jobs as jobs
from glimpse.db import backlog, failures, media, stage_models
from glimpse.db.backfill_jobs import Job, Stage
from glimpse.db.backlog import FIRST_ID, Mode, Models, Scope
from glimpse.errors import is_transient
from glimpse.events import ObjectAction, ObjectEvent, s3_event_json
from glimpse.labels.retag import LabelWork, NothingToTag, label_work
from glimpse.media.limits import raised_since
from glimpse.model_specs import Role
from glimpse.reconcile import Uploads
from glimpse.stages import backfill_topics_of
from glimpse.storage import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)
PAGE_SIZE = 500


class BackfillError(Exception):
    """A backfill that cannot run as asked; the message says why in words."""


class StageWork(Protocol):
    @property
    def stage(self) -> Stage: ...

    @property
    def model(self) -> str | None: ...

    def page(
        self, conn: psycopg.Connection[Any], after: str | None, limit: int
    ) -> tuple[list[OutboundMessage], str | None]:
        """The next messages after cursor ``after``, and the cursor after them (None:
        nothing is left)."""
        ...

    def done(self, conn: psycopg.Connection[Any], cursor: str | None, began: datetime) -> int:
        """Items up to ``cursor`` whose result was written since ``began``."""
        ...


@dataclass
class MediaWork:
    """Work of the caption, transcribe or embed stage, found in Postgres."""

    stage: Stage
    models: Models
    mode: Mode
    scope: Scope
    kafka: KafkaSettings

    @property
    def model(self) -> str | None:
        return self.models.model

    def page(
        self, conn: psycopg.Connection[Any], after: str | None, limit: int
    ) -> tuple[list[OutboundMessage], str | None]:
        start = uuid.UUID(after) if after else FIRST_ID
        args = (conn, self.scope, self.models, self.mode, start, limit)
        found: list[tuple[uuid.UUID, bytes]]
        if self.stage == "embed":
            found = [(t.media_id, t.to_json()) for t in backlog.vectors_wanted(*args)]
        elif self.stage == "caption":
            found = [(i.media_id, i.to_json()) for i in backlog.captions_wanted(*args)]
        else:
            found = [(i.media_id, i.to_json()) for i in backlog.transcripts_wanted(*args)]
        topic = backfill_topic(self.kafka, self.stage)
        out = [OutboundMessage(topic, str(mid).encode(), value) for mid, value in found]
        return out, (str(found[-1][0]) if found else None)

    def count(self, conn: psycopg.Connection[Any]) -> int:
        return backlog.count_wanted(conn, self.stage, self.scope, self.models, self.mode)

    def done(self, conn: psycopg.Connection[Any], cursor: str | None, began: datetime) -> int:
        if cursor is None:
            return 0
        return backlog.count_done(
            conn, self.stage, self.scope, self.models.model, uuid.UUID(cursor), began
        )


@dataclass
class BucketWork:
    """Ingest's work: objects in the bucket (under ``prefix``) in key order; with mode
    "missing" only those without a row of their current version."""

    store: ObjectStore
    mode: Mode
    prefix: str
    kafka: KafkaSettings
    stage: Stage = "ingest"
    model: str | None = None

    def __post_init__(self) -> None:
        self._listing: Iterator[ObjectInfo] | None = None
        self._listed_to: str | None = None

    def page(
        self, conn: psycopg.Connection[Any], after: str | None, limit: int
    ) -> tuple[list[OutboundMessage], str | None]:
        if self._listing is None or self._listed_to != after:  # (re)start the listing
            self._listing = iter(self._uploads(after or ""))
        listed = list(itertools.islice(self._listing, limit))
        if not listed:
            return [], None
        self._listed_to = listed[-1].key
        if self.mode == "missing":
            current = media.current_etags(conn, self.store.bucket, [o.key for o in listed])
            listed = [o for o in listed if o.key not in current or current[o.key] != o.etag]
        out = [
            OutboundMessage(
                backfill_topic(self.kafka, "ingest"),
                o.key.encode(),
                s3_event_json([backfill_event(self.store.bucket, o)]),
            )
            for o in listed
        ]
        return out, self._listed_to

    def done(self, conn: psycopg.Connection[Any], cursor: str | None, began: datetime) -> int:
        if cursor is None:
            return 0
        return backlog.count_ingested(conn, self.store.bucket, self.prefix, cursor, began)

    def _uploads(self, after: str) -> Iterator[ObjectInfo]:
        return iter(Uploads(self.store.list(self.prefix, start_after=after)))


def backfill_topic(kafka: KafkaSettings, stage: Stage) -> str:
    return backfill_topics_of(kafka)[stage][0]


def backfill_event(bucket: str, obj: ObjectInfo) -> ObjectEvent:
    """A created event for ``obj`` that ingest knows to be a backfill's (it then looks at
    rejected files again)."""
    return ObjectEvent(ObjectAction.CREATED, bucket, obj.key, obj.size, obj.etag,
                       obj.last_modified, "backfill")  # fmt: skip


def stage_work(
    conn: psycopg.Connection[Any],
    stage: Stage,
    mode: Mode,
    scope: Scope,
    kafka: KafkaSettings,
    store: ObjectStore,
    model: str | None = None,
    skip_failed: bool = False,
    served: bool = False,
) -> StageWork:
    """The work of ``stage`` for the model its workers run (``model``, if given, must be
    that one: only a running worker can write its results). ``skip_failed`` leaves out
    items the stage dead-lettered since its workers last started. ``served``: embed's
    work is for the text model search serves, not the one a worker started with last
    (a side-by-side worker of a new model is started last; repair is for search)."""
    if stage == "ingest":
        return BucketWork(store, mode, scope.prefix, kafka)
    if stage == "labels":  # tagged here from stored vectors: no worker, no topic
        try:
            return label_work(conn, mode, scope, store, model)
        except NothingToTag as exc:
            raise BackfillError(str(exc)) from exc
    if served and stage == "embed" and model is None:
        active = stage_models.active(conn, "text")
        model = active.model if active else None
    return MediaWork(stage, _models(conn, stage, model, skip_failed), mode, scope, kafka)


_ROLE: dict[Stage, Role] = {
    "caption": "captioner",
    "transcribe": "transcriber",
    "embed": "text",
}


def _models(
    conn: psycopg.Connection[Any], stage: Stage, asked: str | None, skip_failed: bool
) -> Models:
    role = _ROLE[stage]
    running = stage_models.current(conn, role)
    if running is None:
        raise BackfillError(f"no {stage} worker has started yet, so there is no {role} "
                            "model to backfill for: start glimpse first")  # fmt: skip
    if asked is not None and asked != running.model:
        other = stage_models.current(conn, role, asked)
        if other is None:  # only a worker running the model can write its results
            raise BackfillError(
                f"no {stage} worker has run {asked} (they run {running.model}): start "
                f"one with {asked} (see `glimpse models`) and backfill again"
            )
        running = other
    failed_since = running.since if skip_failed else None
    if stage == "caption":
        has_visual = conn.execute(
            "SELECT 1 FROM vector_models WHERE model = %(m)s AND kind = 'visual'",
            {"m": running.model},
        ).fetchone()
        # The joint model the caption workers started with, if the last start had one
        # (it registers right after the captioner; a start without it is newer).
        joint = stage_models.current(conn, "joint")
        return Models(stage, running.model, visual=has_visual is not None,
                      joint=joint.model if joint and joint.since >= running.since else None,
                      failed_since=failed_since)  # fmt: skip
    if stage == "embed":
        # The captions search serves: a captioner filled side by side is embedded once
        # it is activated (services/embed/handler.py passes its captions over till then).
        captioner = stage_models.active(conn, "captioner") or stage_models.current(
            conn, "captioner"
        )
        transcriber = stage_models.current(conn, "transcriber")
        return Models(
            stage,
            running.model,
            captioner=captioner.model if captioner else None,
            transcriber=transcriber.model if transcriber else None,
            failed_since=failed_since,
        )
    return Models(stage, running.model, failed_since=failed_since)


@dataclass
class Pacer:
    """Keeps enqueueing at ``rate`` items per second on average (None: no limit)."""

    rate: float | None
    stop: threading.Event

    def __post_init__(self) -> None:
        self._began = time.monotonic()
        self._sent = 0

    def wait_for(self, n: int) -> None:
        self._sent += n
        if self.rate:
            self.stop.wait(max(0.0, self._began + self._sent / self.rate - time.monotonic()))


def enqueue(
    work: StageWork,
    conn: psycopg.Connection[Any],
    producer: KafkaProducer,
    *,
    cursor: str | None,
    stop: threading.Event,
    rate: float | None = None,
    after_page: Callable[[str, int], None] = lambda cursor, n: None,
    page_size: int = PAGE_SIZE,
) -> bool:
    """Enqueue ``work`` after ``cursor`` until none is left (True) or ``stop`` is set
    (False). ``after_page(cursor, n)`` runs once the broker acknowledged a page."""
    pacer = Pacer(rate, stop)
    if rate:  # small pages at a low rate: smooth sending, a cursor (and heartbeat) often
        page_size = max(1, min(page_size, int(rate * 2)))
    while not stop.is_set():
        messages, next_cursor = work.page(conn, cursor, page_size)
        if next_cursor is None:
            return True
        if messages:
            pacer.wait_for(len(messages))
            send_all(producer, messages, timeout_s=60)
        cursor = next_cursor
        after_page(cursor, len(messages))
    return False


def enqueue_counted(
    work: StageWork, conn: psycopg.Connection[Any], producer: KafkaProducer,
    stop: threading.Event,
) -> int:  # fmt: skip
    """Enqueue all of ``work`` from the start (no job, no cursor kept); how many went."""
    sent = [0]

    def count(_cursor: str, n: int) -> None:
        sent[0] += n

    enqueue(work, conn, producer, cursor=None, stop=stop, after_page=count)
    return sent[0]


def job_scope(job: Job, bucket: str) -> Scope:
    """A job's items: those untouched for ``older_than_s`` when the job was created."""
    cutoff = job.created_at - timedelta(seconds=job.older_than_s)
    return Scope(bucket, cutoff, job.prefix, job.since)


def run_job(
    job: Job,
    work: StageWork,
    conn: psycopg.Connection[Any],
    producer: KafkaProducer,
    stop: threading.Event,
    page_size: int = PAGE_SIZE,
) -> bool:
    """Run (or resume) ``job`` on an autocommit connection that holds its lock until it
    closes. True once everything is enqueued; False if stopped (resumable)."""
    if not jobs.claim(conn, job.id):
        raise BackfillError(f"backfill job {job.id} is running in another process")
    jobs.resume(conn, job.id)
    try:
        if job.total is None and isinstance(work, MediaWork | LabelWork) and job.cursor is None:
            jobs.set_total(conn, job.id, work.count(conn))
        finished = enqueue(
            work,
            conn,
            producer,
            cursor=job.cursor,
            stop=stop,
            rate=job.rate,
            after_page=lambda cursor, n: jobs.advance(conn, job.id, cursor, n),
            page_size=page_size,
        )
    except Exception as exc:
        if not is_transient(exc):  # a server away only interrupts: run it again to resume
            jobs.finish(conn, job.id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    if finished:
        if job.total is None:  # ingest learns its total by listing to the end
            done = jobs.get(conn, job.id)
            jobs.set_total(conn, job.id, done.enqueued if done else 0)
        jobs.finish(conn, job.id, "done")
    else:
        jobs.finish(conn, job.id, "interrupted")
    return finished


# labels: an image captioned in the instant a set was activated (before the caption
# workers picked the set up, after the activation's own pass) is tagged by repair.
REPAIRED_STAGES: tuple[Stage, ...] = ("caption", "transcribe", "embed", "labels")


def repair(
    conn: psycopg.Connection[Any],
    producer: KafkaProducer,
    store: ObjectStore,
    kafka: KafkaSettings,
    older_than_s: float,
    stop: threading.Event,
    limits: LimitsSettings | None = None,
) -> dict[Stage, int]:
    """Announce again every accepted item untouched for ``older_than_s`` that lacks a
    result of the models the workers run — for text vectors, of the model search serves
    — (no job row: each pass walks everything); tag, from its stored vector, every image
    an active label set has no tag for; and
    — given the ``limits`` ingest runs with — ingest again files a limit turned away
    that is higher now. Ingest's other gaps are reconcile's. Stages no worker has run
    yet are skipped."""
    row = conn.execute(
        "SELECT now() - make_interval(secs => %(s)s) AS cutoff", {"s": older_than_s}
    ).fetchone()
    assert row is not None
    scope = Scope(store.bucket, row["cutoff"])
    sent: dict[Stage, int] = {}
    for stage in REPAIRED_STAGES:
        try:
            work = stage_work(conn, stage, "missing", scope, kafka, store, skip_failed=True,
                              served=True)  # fmt: skip
        except BackfillError:
            continue
        sent[stage] = enqueue_counted(work, conn, producer, stop)
        if isinstance(work, LabelWork):  # tagged right here: nothing is sent; count the tags
            sent[stage] = work.tagged
    sent["ingest"] = _failed_before_restart(conn, producer, store, kafka, row["cutoff"])
    if limits is not None:
        sent["ingest"] += _ingest_under_raised_limits(conn, producer, store, kafka, limits)
    if any(sent.values()):
        log.warning("repair: announced again %s", sent)
    return sent


def _ingest_under_raised_limits(
    conn: psycopg.Connection[Any], producer: KafkaProducer, store: ObjectStore,
    kafka: KafkaSettings, limits: LimitsSettings,
) -> int:  # fmt: skip
    """Files rejected by a limit that has been raised since, sent to ingest again."""
    sent, after = 0, FIRST_ID
    while page := backlog.rejected_by_a_limit(conn, store.bucket, after, PAGE_SIZE):
        after = page[-1][0]
        keys = [key for _, key, under in page if raised_since(under, limits)]
        sent += ingest_again(producer, store, kafka, keys)
    return sent


def _failed_before_restart(
    conn: psycopg.Connection[Any], producer: KafkaProducer, store: ObjectStore,
    kafka: KafkaSettings, cutoff: datetime,
) -> int:  # fmt: skip
    """Items a stage marked failed before its workers started again, ingested again once
    (marked re-driven; a new failure clears the mark, and waits for the next start)."""
    sent, after = 0, FIRST_ID
    while page := backlog.failed_before_restart(conn, store.bucket, cutoff, after, PAGE_SIZE):
        after = page[-1][0]
        sent += ingest_again(producer, store, kafka, [key for _, key, _ in page])
        for stage in {stage for _, _, stage in page}:
            failures.mark_retried(conn, stage, [mid for mid, _, s in page if s == stage])
    return sent


def ingest_again(
    producer: KafkaProducer, store: ObjectStore, kafka: KafkaSettings, keys: Sequence[str]
) -> int:
    """A backfill event for each of ``keys`` still in the bucket, on ingest's backfill
    topic (ingest looks again at rejected and failed rows for those); how many went."""
    messages = []
    for key in keys:
        info = store.head(key)
        if info is None:  # gone meanwhile: reconcile records the delete
            continue
        event = backfill_event(store.bucket, info)
        messages.append(OutboundMessage(backfill_topic(kafka, "ingest"), key.encode(),
                                        s3_event_json([event])))  # fmt: skip
    send_all(producer, messages, timeout_s=60)
    return len(messages)
