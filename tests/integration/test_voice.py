"""Voice: uploaded voice notes become searchable by what is said in them, and a spoken
query searches like a typed one. Real whisper (the offline base model), real stack;
the speech is made by espeak-ng, so the words are known.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from harness import RunningStack
from helpers import PHOTOS, SAMPLES, api, connect, search, store_of, upload_sample_photos
from speech_clips import encode, silence, speak

from glimpse.db import voice_queries
from glimpse.db.media import media_id
from glimpse.db.pool import open_pool
from glimpse.db.voice_queries import VoiceQueryRow
from services.search_api.app import create_app
from services.search_api.notifications import QueryNotifications
from services.search_api.retention import sweep_voice_queries

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def photos(stack: RunningStack) -> dict[str, str]:
    return upload_sample_photos(stack)


def ask(stack: RunningStack, clip: Path, content_type: str, **params: Any) -> httpx.Response:
    return httpx.post(
        f"{api(stack)}/v1/search/voice",
        content=clip.read_bytes(),
        headers={"Content-Type": content_type},
        params=params,
        timeout=60,
    )


def words(text: str) -> set[str]:
    return {w.strip(".,!?;:").lower() for w in text.split()}


@pytest.mark.parametrize(("fmt", "content_type"), [("wav", "audio/wav"), ("webm", "audio/webm")])
def test_spoken_query_ranks_the_coffee_photo_first(
    stack: RunningStack, photos: dict[str, str], tmp_path: Path, fmt: str, content_type: str
) -> None:
    clip = speak("a cup of coffee", tmp_path / "query.wav")
    if fmt != "wav":
        clip = encode(clip, fmt)  # what MediaRecorder sends: webm/opus

    response = ask(stack, clip, content_type, prefix="samples/")

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "done"
    assert "coffee" in words(answer["transcript"])
    assert answer["language"] == "en"
    assert answer["hits"][0]["key"] == photos["coffee"]
    again = httpx.get(api(stack) + answer["status_url"], params={"prefix": "samples/"}).json()
    assert again["transcript"] == answer["transcript"]
    assert again["hits"][0]["key"] == photos["coffee"]
    # the filters of /v1/search apply: the coffee is a PNG
    jpegs = httpx.get(
        api(stack) + answer["status_url"], params={"prefix": "samples/", "mime": "image/jpeg"}
    ).json()["hits"]
    assert photos["coffee"] not in {hit["key"] for hit in jpegs}
    assert all(hit["mime"] == "image/jpeg" for hit in jpegs)


def test_voice_note_is_found_by_a_typed_query_for_its_words(
    stack: RunningStack, tmp_path: Path
) -> None:
    said = "remember to buy fresh basil and tomatoes for the pasta sauce"
    note = encode(speak(said, tmp_path / "note.wav"), "ogg")
    key = "voice/notes/shopping.ogg"
    store_of(stack.settings).put(key, note.read_bytes(), "audio/ogg")
    mid = media_id(stack.settings.s3.bucket, key)

    item = wait_until(stack, f"/v1/media/{mid}", lambda m: m["searchable"])

    assert item["kind"] == "audio" and item["language"] == "en"
    assert {"basil", "tomatoes", "pasta"} <= words(item["transcript"])
    assert item["segments"] and item["segments"][0][0] >= 0
    hits = search(stack, "basil and tomatoes")["hits"]
    assert hits[0]["id"] == str(mid)
    assert "basil" in words(hits[0]["transcript"])
    assert hits[0]["thumbnail_url"] is None


def test_silent_voice_note_is_rejected_with_a_reason(stack: RunningStack, tmp_path: Path) -> None:
    key = "voice/notes/silence.wav"
    store_of(stack.settings).put(key, silence(tmp_path / "s.wav", 4).read_bytes(), "audio/wav")
    mid = media_id(stack.settings.s3.bucket, key)

    item = wait_until(stack, f"/v1/media/{mid}", lambda m: m["status"] != "accepted")

    assert item["status"] == "rejected" and item["reason"] == "no_speech"
    assert "speech" in item["reason_detail"]
    assert not item["searchable"]


def test_bad_recordings_get_a_clear_4xx(stack: RunningStack, tmp_path: Path) -> None:
    photo = SAMPLES / PHOTOS["coffee"]
    text = tmp_path / "notes.webm"
    text.write_text("this is not a recording\n" * 20)
    quiet = silence(tmp_path / "quiet.wav", 3)
    too_long = silence(tmp_path / "long.wav", stack.settings.voice.max_seconds + 5)

    cases = {
        "photo": (ask(stack, photo, "audio/webm"), 415),
        "text": (ask(stack, text, "audio/webm"), 415),
        "quiet": (ask(stack, quiet, "audio/wav"), 422),
        "too long": (ask(stack, too_long, "audio/wav"), 422),
    }

    for name, (response, status) in cases.items():
        assert response.status_code == status, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json", name
    assert "speech" in cases["quiet"][0].json()["detail"]
    assert "long" in cases["too long"][0].json()["detail"]
    empty = httpx.post(f"{api(stack)}/v1/search/voice", content=b"",
                       headers={"Content-Type": "audio/webm"}, timeout=10)  # fmt: skip
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    huge = httpx.post(
        f"{api(stack)}/v1/search/voice",
        content=b"\0" * (stack.settings.voice.max_bytes + 1),
        headers={"Content-Type": "audio/wav"},
        timeout=30,
    )
    assert huge.status_code == 413


def test_a_slow_transcript_answers_202_and_the_query_url_has_it_later(
    stack: RunningStack, photos: dict[str, str], tmp_path: Path
) -> None:
    # An API of its own, on the same stack, that waits no time at all.
    settings = stack.settings.model_copy(deep=True)
    settings.voice.wait_s = 0.0
    clip = speak("a rocket", tmp_path / "rocket.wav").read_bytes()
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        response = client.post(
            "/v1/search/voice", content=clip, headers={"Content-Type": "audio/wav"}
        )
        assert response.status_code == 202, response.text
        pending = response.json()
        assert pending["status"] == "pending" and pending["hits"] == []

    later = pending["status_url"] + "?prefix=samples/"
    answer = wait_until(stack, later, lambda q: q["status"] != "pending")
    assert answer["status"] == "done" and "rocket" in words(answer["transcript"])
    assert answer["hits"][0]["key"] == photos["rocket"]


def test_voice_queries_survive_a_killed_transcribe_worker(
    stack: RunningStack, photos: dict[str, str], tmp_path: Path
) -> None:
    settings = stack.settings.model_copy(deep=True)
    settings.voice.wait_s = 0.0  # answer 202 at once: the queries are in flight below
    said = {"coffee": "a cup of coffee", "rocket": "a rocket", "motorcycle": "a motorbike"}
    clips = [speak(words, tmp_path / f"{name}.wav").read_bytes() for name, words in said.items()]
    worker = stack.stack.part("transcribe-queries").process
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        pending = [
            client.post("/v1/search/voice", content=c, headers={"Content-Type": "audio/wav"})
            for c in clips
        ]
        killed = worker.pid
        worker.kill()  # kill -9 with the requests queued or half transcribed

    answers = [
        wait_until(
            stack, r.json()["status_url"] + "?prefix=samples/", lambda q: q["status"] != "pending"
        )
        for r in pending
    ]
    assert [a["status"] for a in answers] == ["done"] * 3
    assert [a["hits"][0]["key"] for a in answers] == [photos[name] for name in said]
    assert worker.pid != killed  # the supervisor started a new one


def test_a_query_nobody_waits_for_any_more_is_dropped_not_transcribed(
    stack: RunningStack, tmp_path: Path
) -> None:
    # As after an outage: the caller got its 202 and left; no poll keeps the query wanted.
    settings = stack.settings.model_copy(deep=True)
    settings.voice.wait_s = 0.0
    settings.voice.abandon_after_s = 0.0
    clip = speak("a rocket", tmp_path / "rocket.wav").read_bytes()
    worker = stack.stack.part("transcribe-queries").process
    # Held still until the API has answered: a worker that picks the query up first
    # already sees it abandoned, and the API answers 422 instead of 202.
    with (
        worker.paused(),
        TestClient(create_app(settings), base_url="http://127.0.0.1") as client,
    ):
        response = client.post(
            "/v1/search/voice", content=clip, headers={"Content-Type": "audio/wav"}
        )
    assert response.status_code == 202, response.text
    pending = response.json()

    with connect(stack.settings) as conn:
        deadline = time.monotonic() + 60
        while (row := voice_queries.get(conn, pending["query_id"])) and row["status"] == "pending":
            assert time.monotonic() < deadline, "the query was never picked up"
            time.sleep(0.2)
    assert row is not None
    assert (row["status"], row["reason"]) == ("failed", "abandoned")
    assert row["transcript"] is None and row["model"] is None  # whisper never ran


def test_unknown_query_is_404(stack: RunningStack) -> None:
    response = httpx.get(f"{api(stack)}/v1/queries/{uuid.uuid4()}")
    assert response.status_code == 404 and "expire" in response.json()["detail"]


def test_expired_queries_lose_their_clip_and_row(stack: RunningStack) -> None:
    s = stack.settings
    store = store_of(s)
    old, fresh = uuid.uuid4(), uuid.uuid4()
    with connect(s) as conn:
        for query_id in (old, fresh):
            key = f"queries/{query_id}.wav"
            store.put(key, b"RIFF....WAVE", "audio/wav")
            row = VoiceQueryRow(query_id, s.s3.bucket, key, "audio/wav", 12)
            voice_queries.create(conn, row, timedelta(seconds=30))
        conn.execute(
            "UPDATE voice_queries SET created_at = now() - interval '2 days' WHERE id = %(id)s",
            {"id": old},
        )

    with open_pool(s.database, "test-sweep") as pool:
        deleted = sweep_voice_queries(pool, store, older_than=timedelta(days=1))

    assert deleted >= 1
    assert store.head(f"queries/{old}.wav") is None
    assert store.head(f"queries/{fresh}.wav") is not None
    with connect(s) as conn:
        assert voice_queries.get(conn, old) is None
        assert voice_queries.get(conn, fresh) is not None


def test_notifications_wake_exactly_the_waiting_query(stack: RunningStack) -> None:
    url, channel = stack.settings.database.url, voice_queries.CHANNEL
    assert url

    async def scenario() -> tuple[bool, bool]:
        listener = QueryNotifications(url)
        task = asyncio.create_task(listener.run())
        await asyncio.wait_for(listener.listening.wait(), 10)
        mine, other = uuid.uuid4(), uuid.uuid4()
        with listener.expect(mine) as woken, listener.expect(other) as not_woken:
            with connect(stack.settings) as conn:
                for payload in ("not-a-uuid", str(mine)):
                    conn.execute("SELECT pg_notify(%(c)s, %(p)s)", {"c": channel, "p": payload})
            await asyncio.wait_for(woken.wait(), 5)
            result = woken.is_set(), not_woken.is_set()
        task.cancel()
        return result

    assert asyncio.run(scenario()) == (True, False)


def wait_until(
    stack: RunningStack, path: str, done: Callable[[dict[str, Any]], bool], timeout_s: float = 120
) -> dict[str, Any]:
    """GET ``path`` until ``done(body)``; the last body."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(api(stack) + path, timeout=30)
        if response.status_code == 200:
            body = response.json()
            if done(body):
                return body
        time.sleep(0.3)
    raise AssertionError(f"{path} never got there; last: {body}")
