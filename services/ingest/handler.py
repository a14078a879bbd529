"""Ingest: an upload event in, a media row (accepted, duplicate or rejected) out.

Always processes what is in the bucket *now* (HEAD + bounded GET), so an old or
re-delivered event for a key converges on the same row as the newest one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from glimpse.bus import InboundMessage, OutboundMessage
from glimpse.config import IngestSettings, KafkaSettings, LimitsSettings
from glimpse.db import media
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.errors import TransientError
from glimpse.events import (
    DERIVED_PREFIXES,
    MalformedEvent,
    ObjectAction,
    ObjectEvent,
    parse_object_events,
)
from glimpse.media import MediaKind, Rejected, RejectReason, ValidatedMedia, validate_media
from glimpse.media.budget import DecodeBudget
from glimpse.media.limits import REJECTED_UNDER, limit_hit
from glimpse.messages import MediaAccepted
from glimpse.metrics import IngestMetrics
from glimpse.runtime import DeadLetter, Done, Failed, ItemResult, Outcome
from glimpse.storage import ObjectInfo, ObjectStore, ObjectTooLarge, OpenedObject
from glimpse.uploads import is_api_upload

log = logging.getLogger(__name__)

_FINAL = {MediaStatus.ACCEPTED, MediaStatus.REJECTED, MediaStatus.DUPLICATE}


def thumbnail_key(sha256: str) -> str:
    # Content-addressed: re-delivery rewrites the same object, duplicates share it.
    return f"thumbnails/{sha256[:2]}/{sha256}.jpg"


@dataclass
class IngestHandler:
    store: ObjectStore
    pool: ConnectionPool[psycopg.Connection[Any]]
    limits: LimitsSettings
    kafka: KafkaSettings
    metrics: IngestMetrics
    concurrency: int = 4
    ingest: IngestSettings = field(default_factory=IngestSettings)

    def __post_init__(self) -> None:
        # Pillow and PyAV release the GIL while decoding; S3 and Postgres waits overlap.
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="ingest")
        # Threads overlap waits; memory is bounded by what decodes at once, in pixels.
        self.budget = DecodeBudget(round(self.ingest.decode_budget_megapixels * 1e6))

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)
        self.pool.close()

    # --- runtime interface ---------------------------------------------------------
    def handle(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        # Each item converges on the bucket's current state, so items of one batch
        # (even two events for one key) can run in any order.
        return list(self._threads.map(self._handle_message, batch))

    def record_failure(self, message: InboundMessage, letter: DeadLetter) -> None:
        try:
            events = parse_object_events(
                message.key, message.value, ignored_prefixes=DERIVED_PREFIXES
            )
        except MalformedEvent:
            return  # no media row to attach it to: the DLQ entry is the record
        with self.pool.connection() as conn:
            for event in events:
                media.record_dead_letter(conn, event.bucket, event.key, letter, fail_media=True)

    # --- one message ---------------------------------------------------------------
    def _handle_message(self, message: InboundMessage) -> ItemResult:
        try:
            events = parse_object_events(
                message.key, message.value, ignored_prefixes=DERIVED_PREFIXES
            )
        except MalformedEvent as exc:
            return Failed(exc, permanent=True)
        outcome = Outcome.SKIPPED
        outputs: list[OutboundMessage] = []
        for event in events:
            if event.bucket != self.store.bucket:
                log.warning(
                    "ignoring event for bucket %r (serving %r)", event.bucket, self.store.bucket
                )
                continue
            if event.action is ObjectAction.DELETED:
                outcome, produced = self._delete(event)
            else:
                outcome, produced = self._ingest(event)
            outputs.extend(produced)
        return Done(outputs, outcome)

    def _delete(self, event: ObjectEvent) -> tuple[Outcome, list[OutboundMessage]]:
        if self.store.head(event.key) is not None:
            return Outcome.SKIPPED, []  # re-created since: the newer create event wins
        with self.pool.connection() as conn:
            old = media.mark_deleted(conn, event.bucket, event.key)
            if old is None:
                return Outcome.SKIPPED, []
            # A deleted original hands its place to its oldest duplicate.
            promoted = media.promote_duplicate(conn, old["sha256"]) if old["sha256"] else None
            thumb = old["thumbnail_key"]
            if thumb and not media.thumbnail_in_use(conn, thumb):
                self.store.delete(thumb)
        return Outcome.OK, self._announce_promoted(promoted)

    def _ingest(self, event: ObjectEvent) -> tuple[Outcome, list[OutboundMessage]]:
        opened = self.store.open(event.key)
        if opened is None:
            return Outcome.SKIPPED, []  # deleted since; its delete event follows
        with opened:
            return self._ingest_object(event, opened)

    def _ingest_object(
        self, event: ObjectEvent, opened: OpenedObject
    ) -> tuple[Outcome, list[OutboundMessage]]:
        info = opened.info
        with self.pool.connection() as conn:
            existing = media.get(conn, media.media_id(event.bucket, event.key))
        # A backfill of everything looks at rejected files again (limits may have changed).
        final = _FINAL - {MediaStatus.REJECTED} if event.source == "backfill" else _FINAL
        if existing and existing["etag"] == info.etag and existing["status"] in final:
            # Re-delivery of work already stored: re-announce, downstream is idempotent.
            if existing["status"] == MediaStatus.ACCEPTED:
                return Outcome.SKIPPED, [self._announce(MediaAccepted.from_row(existing))]
            return Outcome.SKIPPED, []
        row = MediaRow(bucket=event.bucket, key=event.key, status=MediaStatus.REJECTED,
                       etag=info.etag, size_bytes=info.size)  # fmt: skip
        try:
            if info.size > self.limits.max_bytes:  # refuse without downloading
                raise ObjectTooLarge(info.size, self.limits.max_bytes)
            data = opened.read(self.limits.max_bytes)
            self.metrics.bytes.inc(len(data))
            validated = validate_media(data, self.limits, self.budget.admit)
        except ObjectTooLarge as exc:
            rejection = Rejected(RejectReason.TOO_LARGE, _too_large(exc.size, self.limits))
            return self._reject(row, rejection, info)
        except Rejected as rejection:
            return self._reject(row, rejection, info)
        return self._accept(row, validated)

    def _reject(
        self, row: MediaRow, rejection: Rejected, info: ObjectInfo
    ) -> tuple[Outcome, list[OutboundMessage]]:
        row.status = MediaStatus.REJECTED
        row.reason = rejection.reason.value
        row.reason_detail = rejection.message
        # What a client sent through the API and cannot be used would otherwise stay in
        # the bucket for good (anyone with a key could fill it).
        remove = self.limits.remove_rejected_uploads and is_api_upload(info.metadata)
        if remove:
            row.metadata = {media.REMOVED_FROM_BUCKET: "true"}
        elif limit := limit_hit(rejection.reason, self.limits):
            row.metadata = {REJECTED_UNDER: limit}  # looked at again once it is raised
        with self.pool.connection() as conn:
            promoted = media.save(conn, row)
        if remove:
            self.store.delete(row.key)
        self.metrics.rejections.labels(rejection.reason.value).inc()
        log.info("rejected %s: %s (%s)", row.key, rejection.reason.value, rejection.message)
        return Outcome.REJECTED, self._announce_promoted(promoted)

    def _accept(self, row: MediaRow, v: ValidatedMedia) -> tuple[Outcome, list[OutboundMessage]]:
        row.kind, row.mime, row.size_bytes, row.sha256 = (
            v.kind.value,
            v.mime,
            v.size_bytes,
            v.sha256,
        )
        row.width, row.height, row.duration_s = v.width, v.height, v.duration_s
        row.captured_at, row.metadata = v.captured_at, dict(v.metadata)
        if v.thumbnail is not None:
            row.thumbnail_key = thumbnail_key(v.sha256)
            self.store.put(row.thumbnail_key, v.thumbnail, v.thumbnail_mime or "image/jpeg")
        with self.pool.connection() as conn:
            original = media.find_original(conn, v.sha256, exclude=row.id)
            row.status = MediaStatus.DUPLICATE if original else MediaStatus.ACCEPTED
            row.duplicate_of = original
            try:
                promoted = media.save(conn, row)
            except psycopg.errors.UniqueViolation as exc:
                # Another worker accepted the same content a moment ago: retrying
                # finds it as the original and records this one as its duplicate.
                raise TransientError(f"concurrent upload of the same content: {exc}") from exc
        if original:
            self.metrics.duplicates.inc()
            return Outcome.OK, self._announce_promoted(promoted)
        self.metrics.accepted.labels(v.kind.value).inc()
        announced = [self._announce(MediaAccepted.from_row(row.columns()))]
        return Outcome.OK, announced + self._announce_promoted(promoted)

    def _announce_promoted(self, promoted: Mapping[str, Any] | None) -> list[OutboundMessage]:
        """A duplicate that took a gone original's place is processed like a fresh accept."""
        if promoted is None:
            return []
        log.info("%s replaces its deleted or overwritten original", promoted["key"])
        return [self._announce(MediaAccepted.from_row(promoted))]

    def _announce(self, accepted: MediaAccepted) -> OutboundMessage:
        topic = (
            self.kafka.images_accepted_topic
            if accepted.kind == MediaKind.IMAGE
            else self.kafka.audio_accepted_topic
        )
        return OutboundMessage(topic, str(accepted.media_id).encode(), accepted.to_json())


def _too_large(size: int, limits: LimitsSettings) -> str:
    return f"file is {size:,} bytes; the limit is {limits.max_bytes:,} bytes"
