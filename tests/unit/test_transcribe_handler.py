"""The transcribe handler keeps a transcript it could not save: the retry saves it
without running whisper again (40 minutes for a long voice note)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from doubles import MemoryStore, accepted, message
from psycopg_pool import ConnectionPool

from glimpse.config import DatabaseSettings, KafkaSettings, LimitsSettings, VoiceSettings
from glimpse.db import transcripts
from glimpse.db.pool import open_pool
from glimpse.errors import is_transient
from glimpse.models.base import InferenceModel
from glimpse.models.speech import Segment, Transcriber, Transcript
from glimpse.runtime import Done
from services.transcribe import handler as transcribe_handler
from services.transcribe.handler import TranscribeHandler


class CountingTranscriber(Transcriber):
    """Hears "hello there" in anything, and counts how often it was asked."""

    def __init__(self) -> None:
        InferenceModel.__init__(self, "test/whisper")
        self.runs = 0

    def _load(self) -> str:
        return "r1"

    def transcribe(
        self, audio: bytes, *, max_seconds: float, language: str | None = None
    ) -> Transcript:
        self.runs += 1
        return Transcript("hello there", "en", 1.0, 2.0, [Segment(0.0, 2.0, "hello there")])


@pytest.fixture
def pool(postgres: str) -> Iterator[ConnectionPool[psycopg.Connection[Any]]]:
    with open_pool(DatabaseSettings(url=postgres), "transcribe-test") as pool:
        yield pool


def test_a_failed_save_is_retried_without_transcribing_again(
    pool: ConnectionPool[psycopg.Connection[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, transcriber, kafka = MemoryStore(), CountingTranscriber(), KafkaSettings()
    handler = TranscribeHandler(
        store.as_store(), pool, transcriber, kafka, LimitsSettings(), VoiceSettings()
    )
    with pool.connection() as conn:
        item = accepted(conn, "audio")
    store.objects[item.key] = b"a long voice note"
    incoming = message(kafka.audio_accepted_topic, item)

    saves: list[transcripts.TranscriptRow] = []
    real_save = transcripts.save

    def save_while_postgres_restarts(conn: psycopg.Connection[Any], row: Any) -> None:
        saves.append(row)
        if len(saves) == 1:
            raise psycopg.errors.AdminShutdown("terminating connection (administrator command)")
        real_save(conn, row)

    monkeypatch.setattr(transcribe_handler.transcripts, "save", save_while_postgres_restarts)
    with pytest.raises(psycopg.errors.AdminShutdown) as restarting:
        handler.handle([incoming])
    assert is_transient(restarting.value)  # so the runtime retries the item, forever

    [result] = handler.handle([incoming])

    assert isinstance(result, Done) and len(result.outputs) == 1
    assert transcriber.runs == 1
    assert len(saves) == 2
    with pool.connection() as conn:
        stored = conn.execute(
            "SELECT text FROM transcripts WHERE media_id = %(id)s", {"id": item.media_id}
        ).fetchone()
    assert stored == {"text": "hello there"}
