"""What each transcribe role runs with: queries are taken one by one, at once."""

from __future__ import annotations

from glimpse.config import Settings
from services.transcribe.__main__ import role_settings


def test_queries_take_each_clip_at_once_and_ask_the_broker_to_answer_sooner() -> None:
    settings = Settings()

    worker, kafka = role_settings("queries", settings)

    assert (worker.max_batch, worker.max_wait_ms) == (1, 0)
    assert kafka.fetch_max_wait_ms == settings.voice.fetch_max_wait_ms
    assert kafka.fetch_max_wait_ms < settings.kafka.fetch_max_wait_ms


def test_uploads_take_one_note_per_batch_with_the_usual_fetches() -> None:
    settings = Settings()

    worker, kafka = role_settings("uploads", settings)

    assert worker.max_batch == 1
    assert worker.max_wait_ms == settings.worker.max_wait_ms
    assert kafka == settings.kafka
