"""Transcribe: uploaded audio and recorded search clips in, transcripts out.

Uploaded audio gets a transcript row and a ``glimpse.transcripts.ready`` message for
the embed service. A voice query's row is finished in place (transcript or the reason
there is none) and its waiting API request is woken by the NOTIFY that commits with it.
Clips are transcribed one at a time: whisper already uses every core.

A transcript that could not be saved (Postgres restarting, say) is kept in memory
until it is: the runtime's retry of the item then saves it without running whisper
again, which for a long voice note would cost as long as the first run.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import ValidationError

from glimpse.bus import InboundMessage, OutboundMessage
from glimpse.config import KafkaSettings, LimitsSettings, VoiceSettings
from glimpse.db import failures, media, stage_models, transcripts, voice_queries
from glimpse.db.transcripts import TranscriptRow
from glimpse.messages import MediaAccepted, TextReady, VoiceQueryRequested
from glimpse.models.speech import Transcriber, Transcript, TranscriptionError
from glimpse.runtime import DeadLetter, Done, Failed, ItemResult, Outcome
from glimpse.storage import ObjectStore
from glimpse.vocabulary import LibraryVocabulary, without_repeats

log = logging.getLogger(__name__)
# Unsaved transcripts kept for a retry. A few: the uploads worker takes one clip at a
# time, and an entry whose item went to the DLQ instead is pushed out by later ones.
_UNSAVED_KEPT = 4


@dataclass
class TranscribeHandler:
    store: ObjectStore
    pool: ConnectionPool[psycopg.Connection[Any]]
    transcriber: Transcriber
    kafka: KafkaSettings
    limits: LimitsSettings
    voice: VoiceSettings
    # the transcriber's load spec for the registry (glimpse.model_specs)
    spec: dict[str, Any] = field(default_factory=dict)
    # the library's words whisper is biased toward when it hears a voice query
    vocabulary: LibraryVocabulary | None = None
    # (media id, content sha256, model) -> the transcript not saved yet
    _unsaved: dict[tuple[uuid.UUID, str, str], TranscriptRow] = field(
        default_factory=dict, init=False
    )

    def __post_init__(self) -> None:
        self.transcriber.load()
        with self.pool.connection() as conn:
            model = self.transcriber
            stage_models.register(conn, "transcriber", model.model_id, model.revision,
                                  self.spec)  # fmt: skip

    def close(self) -> None:
        self.pool.close()

    def handle(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        return [self._handle_one(message) for message in batch]

    def record_failure(self, message: InboundMessage, letter: DeadLetter) -> None:
        with self.pool.connection() as conn, conn.transaction():
            if message.topic == self.kafka.voice_queries_topic:
                try:
                    query = VoiceQueryRequested.from_json(message.value)
                except ValidationError:
                    return
                detail = f"the recording could not be transcribed ({letter.message})"
                voice_queries.fail(conn, query.query_id, letter.reason, detail)
                return
            try:
                item = MediaAccepted.from_json(message.value)
            except ValidationError:
                return
            # The transcript is all an audio item has: without it the item is failed.
            media.record_dead_letter(conn, item.bucket, item.key, letter, fail_media=True)

    def _handle_one(self, message: InboundMessage) -> ItemResult:
        try:
            if message.topic == self.kafka.voice_queries_topic:
                return self._voice_query(VoiceQueryRequested.from_json(message.value))
            return self._upload(MediaAccepted.from_json(message.value))
        except ValidationError as exc:
            return Failed(exc, permanent=True)

    def _upload(self, item: MediaAccepted) -> ItemResult:
        with self.pool.connection() as conn:
            if not media.accepted_ids(conn, [item.media_id]):
                return Done(outcome=Outcome.SKIPPED)  # deleted or replaced since
        unsaved = (item.media_id, item.sha256, self.transcriber.model_id)
        row = self._unsaved.get(unsaved)
        if row is None:
            try:
                found = self._transcribe_stored(item.key)
            except TranscriptionError as exc:
                with self.pool.connection() as conn, conn.transaction():
                    media.reject_accepted(conn, item.media_id, exc.reason, exc.detail)
                log.info("%s: no transcript: %s", item.key, exc.detail)
                return Done(outcome=Outcome.REJECTED)
            if found is None:
                return Done(outcome=Outcome.SKIPPED)  # the object is gone
            row = TranscriptRow(
                media_id=item.media_id,
                model=self.transcriber.model_id,
                model_revision=self.transcriber.revision,
                language=found.language,
                language_probability=found.language_probability,
                duration_s=found.duration_s,
                text=found.text,
                segments=[(s.start, s.end, s.text) for s in found.segments],
            )
            self._keep_unsaved(unsaved, row)
        else:
            log.info("%s: saving the transcript kept from an earlier attempt", item.key)
        with self.pool.connection() as conn, conn.transaction():
            transcripts.save(conn, row)
            failures.clear(conn, "transcribe", [row.media_id])
        del self._unsaved[unsaved]
        ready = TextReady(
            media_id=row.media_id, source="transcript", model=row.model, text=row.text
        )
        out = OutboundMessage(
            self.kafka.transcripts_ready_topic, str(row.media_id).encode(), ready.to_json()
        )
        return Done([out])

    def _keep_unsaved(self, key: tuple[uuid.UUID, str, str], row: TranscriptRow) -> None:
        self._unsaved[key] = row
        while len(self._unsaved) > _UNSAVED_KEPT:
            del self._unsaved[next(iter(self._unsaved))]  # the oldest

    def _transcribe_stored(self, key: str) -> Transcript | None:
        """An upload, spooled to a temporary file: hours of audio are never all in memory
        (the transcriber decodes it window by window). None if the object is gone."""
        with tempfile.TemporaryDirectory(prefix="glimpse-transcribe-") as folder:
            path = Path(folder) / "audio"
            if not self.store.download(key, path, self.limits.max_bytes):
                return None
            return self.transcriber.transcribe(path, max_seconds=self.limits.max_audio_seconds)

    def _voice_query(self, query: VoiceQueryRequested) -> ItemResult:
        with self.pool.connection() as conn:
            row = voice_queries.get(conn, query.query_id)
        if row is None or row["status"] != "pending":
            return Done(outcome=Outcome.SKIPPED)  # expired, or finished by an earlier delivery
        if row["abandoned"]:
            with self.pool.connection() as conn, conn.transaction():
                voice_queries.fail(
                    conn,
                    query.query_id,
                    "abandoned",
                    "nobody was waiting for this answer any more, so it was not transcribed",
                )
            return Done(outcome=Outcome.SKIPPED)
        data = self.store.read(query.key, self.voice.max_bytes)
        if data is None:
            failure = TranscriptionError(
                "clip_missing", "the recording is no longer stored (it expired or was deleted)"
            )
        else:
            try:
                found = self.transcriber.transcribe(
                    data,
                    max_seconds=self.voice.max_seconds,
                    language=self.voice.language,
                    hotwords=self.vocabulary.hotwords() if self.vocabulary else None,
                )
                failure = None
            except TranscriptionError as exc:
                failure = exc
        with self.pool.connection() as conn, conn.transaction():
            if failure is not None:
                voice_queries.fail(conn, query.query_id, failure.reason, failure.detail)
                return Done(outcome=Outcome.REJECTED)
            voice_queries.finish(
                conn,
                query.query_id,
                transcript=without_repeats(found.text),
                language=found.language,
                duration_s=found.duration_s,
                model=self.transcriber.model_id,
            )
        return Done()
