"""Finding a stage's work in Postgres: what counts as missing, scope, and the cursor."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from glimpse.db import backlog, captions, failures, media, transcripts, vectors, worker_starts
from glimpse.db.backlog import FIRST_ID, Models, Scope
from glimpse.db.captions import CaptionRow
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.db.transcripts import TranscriptRow

CAPTIONER = "labels/test-captioner"
TRANSCRIBER = "whisper/test"
TEXT = vectors.VectorModel("text/test-embedder", "text", 4)
VISUAL = vectors.VectorModel(CAPTIONER, "visual", 4)


@pytest.fixture
def conn(postgres: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres, row_factory=dict_row, autocommit=True) as c:
        from pgvector.psycopg import register_vector

        register_vector(c)
        vectors.register_model(c, TEXT)
        vectors.register_model(c, VISUAL)
        yield c


@pytest.fixture
def bucket() -> str:
    return f"backlog-{uuid.uuid4().hex[:8]}"


def add(
    conn: psycopg.Connection[Any], bucket: str, key: str, kind: str = "image",
    status: MediaStatus = MediaStatus.ACCEPTED,
) -> uuid.UUID:  # fmt: skip
    row = MediaRow(bucket=bucket, key=key, status=status, etag="e", kind=kind, mime="image/png",
                   size_bytes=10, sha256=uuid.uuid4().hex)  # fmt: skip
    media.save(conn, row)
    return row.id


def caption(conn: psycopg.Connection[Any], mid: uuid.UUID, model: str = CAPTIONER) -> None:
    captions.save(conn, [CaptionRow(mid, model, "r1", f"a photo {mid}", [("cat", 0.9)])])


def vector(conn: psycopg.Connection[Any], mid: uuid.UUID, vm: vectors.VectorModel) -> None:
    vectors.save(conn, [mid], vm, ["caption"], np.ones((1, vm.dim), dtype=np.float32))


def scope(bucket: str, **kw: Any) -> Scope:
    return Scope(bucket, cutoff=datetime.now(UTC) + timedelta(seconds=5), **kw)


def keys(conn: psycopg.Connection[Any], ids: list[uuid.UUID]) -> set[str]:
    rows = conn.execute("SELECT key FROM media WHERE id = ANY(%(ids)s)", {"ids": ids}).fetchall()
    return {r["key"] for r in rows}


def test_caption_work_is_accepted_images_without_a_caption_or_visual_vector_of_the_model(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    complete = add(conn, bucket, "complete.png")
    caption(conn, complete)
    vector(conn, complete, VISUAL)
    no_vector = add(conn, bucket, "no-vector.png")
    caption(conn, no_vector)
    other_model = add(conn, bucket, "other-model.png")
    caption(conn, other_model, "labels/an-older-captioner")
    vector(conn, other_model, VISUAL)
    add(conn, bucket, "nothing.png")
    add(conn, bucket, "voice.ogg", kind="audio")
    add(conn, bucket, "bad.png", status=MediaStatus.REJECTED)
    models = Models("caption", CAPTIONER, visual=True)

    missing = backlog.captions_wanted(conn, scope(bucket), models, "missing", FIRST_ID, 100)
    everything = backlog.captions_wanted(conn, scope(bucket), models, "all", FIRST_ID, 100)

    assert {m.key for m in missing} == {"no-vector.png", "other-model.png", "nothing.png"}
    assert {m.key for m in everything} == {"complete.png"} | {m.key for m in missing}
    assert backlog.count_wanted(conn, "caption", scope(bucket), models, "missing") == 3
    blip = Models("caption", CAPTIONER, visual=False)  # a captioner without visual vectors
    no_visual = backlog.captions_wanted(conn, scope(bucket), blip, "missing", FIRST_ID, 100)
    assert {m.key for m in no_visual} == {"nothing.png", "other-model.png"}


def test_caption_work_includes_images_without_a_vector_of_the_joint_model_run(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    joint = vectors.VectorModel("joint/test-clip", "joint", 4)
    vectors.register_model(conn, joint)
    complete = add(conn, bucket, "complete.png")
    caption(conn, complete)
    vector(conn, complete, VISUAL)
    vector(conn, complete, joint)
    before_joint = add(conn, bucket, "captioned-before-the-joint-model.png")
    caption(conn, before_joint)
    vector(conn, before_joint, VISUAL)
    with_joint = Models("caption", CAPTIONER, visual=True, joint=joint.model)
    without = Models("caption", CAPTIONER, visual=True)

    wanted = backlog.captions_wanted(conn, scope(bucket), with_joint, "missing", FIRST_ID, 100)
    unwanted = backlog.captions_wanted(conn, scope(bucket), without, "missing", FIRST_ID, 100)

    assert {m.key for m in wanted} == {"captioned-before-the-joint-model.png"}
    assert unwanted == []


def test_pages_follow_the_id_cursor_without_gaps_or_repeats(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    ids = {add(conn, bucket, f"p/{i:02}.png") for i in range(23)}
    models = Models("caption", CAPTIONER, visual=True)
    seen: list[uuid.UUID] = []
    after = FIRST_ID
    while page := backlog.captions_wanted(conn, scope(bucket), models, "missing", after, 5):
        seen.extend(m.media_id for m in page)
        after = page[-1].media_id

    assert seen == sorted(ids) and len(seen) == 23


def test_scope_by_prefix_taken_literally_by_creation_date_and_by_age(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    add(conn, bucket, "2019_a/x.png")
    add(conn, bucket, "2019-a/x.png")  # "_" in the prefix is no wildcard
    models = Models("caption", CAPTIONER)

    def found(s: Scope) -> set[str]:
        return {m.key for m in backlog.captions_wanted(conn, s, models, "missing", FIRST_ID, 50)}

    assert found(scope(bucket, prefix="2019_")) == {"2019_a/x.png"}
    future = datetime.now(UTC) + timedelta(hours=1)
    assert found(scope(bucket, since=future)) == set()
    young = Scope(bucket, cutoff=datetime.now(UTC) - timedelta(minutes=10))
    assert found(young) == set()  # written a moment ago: the live pipeline's work


def test_embed_work_is_text_newer_than_the_vector_of_the_source_model(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    fresh = add(conn, bucket, "fresh.png")
    caption(conn, fresh)
    vector(conn, fresh, TEXT)
    stale = add(conn, bucket, "stale.png")
    vector(conn, stale, TEXT)
    time.sleep(0.01)
    caption(conn, stale)  # re-captioned after its vector was made
    never = add(conn, bucket, "never.png")
    caption(conn, never)
    note = add(conn, bucket, "note.ogg", kind="audio")
    transcripts.save(conn, TranscriptRow(note, TRANSCRIBER, "r", "en", 0.9, 3.0, "buy milk", []))
    add(conn, bucket, "uncaptioned.png")
    models = Models("embed", TEXT.model, captioner=CAPTIONER, transcriber=TRANSCRIBER)

    wanted = backlog.vectors_wanted(conn, scope(bucket), models, "missing", FIRST_ID, 50)

    assert {(t.media_id, t.source) for t in wanted} == {
        (stale, "caption"), (never, "caption"), (note, "transcript")
    }  # fmt: skip
    assert next(t.text for t in wanted if t.media_id == note) == "buy milk"
    assert backlog.count_wanted(conn, "embed", scope(bucket), models, "missing") == 3


def test_embed_work_includes_vectors_made_from_another_captioners_caption(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    """After a captioner switch: the vector is newer than the new caption, but says the
    old one's; it is work, until a vector of the new caption's text is stored."""
    switched = add(conn, bucket, "switched.png")
    caption(conn, switched, "labels/an-older-captioner")
    caption(conn, switched)
    time.sleep(0.01)
    vectors.save(conn, [switched], TEXT, ["caption"], np.ones((1, 4), dtype=np.float32),
                 ["labels/an-older-captioner"])  # fmt: skip
    models = Models("embed", TEXT.model, captioner=CAPTIONER, transcriber=TRANSCRIBER)

    def wanted() -> set[uuid.UUID]:
        found = backlog.vectors_wanted(conn, scope(bucket), models, "missing", FIRST_ID, 50)
        return {t.media_id for t in found}

    assert wanted() == {switched}
    assert vectors.fresh_text_vectors(conn, [switched], TEXT) == {
        switched: "labels/an-older-captioner"
    }
    vectors.save(conn, [switched], TEXT, ["caption"], np.ones((1, 4), dtype=np.float32),
                 [CAPTIONER])  # fmt: skip
    assert wanted() == set()
    assert vectors.fresh_text_vectors(conn, [switched], TEXT) == {switched: CAPTIONER}


def test_done_counts_results_written_since_the_job_began_up_to_its_cursor(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    before = add(conn, bucket, "before.png")
    caption(conn, before)  # done before the job: not the job's work
    time.sleep(0.01)
    began = conn.execute("SELECT now() AS t").fetchone()["t"]  # type: ignore[index]
    ids = sorted(add(conn, bucket, f"job/{i}.png") for i in range(4))
    for mid in ids[:3]:
        caption(conn, mid)

    assert backlog.count_done(conn, "caption", scope(bucket), CAPTIONER, ids[-1], began) == 3
    assert backlog.count_done(conn, "caption", scope(bucket), CAPTIONER, ids[0], began) == 1


def test_repair_leaves_alone_what_the_stage_dead_lettered_since_its_workers_started(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    poison = add(conn, bucket, "poison.png")
    retried = add(conn, bucket, "retried.png")
    add(conn, bucket, "plain.png")
    for mid in (poison, retried):
        conn.execute(
            "INSERT INTO media_failures (media_id, stage, error_type, message, attempts, origin) "
            "VALUES (%(id)s, 'caption', 'ValueError', 'cannot decode', 3, 't/0@1')",
            {"id": mid},
        )
    conn.execute(
        "UPDATE media_failures SET retried_at = now() WHERE media_id = %(id)s", {"id": retried}
    )
    started = datetime.now(UTC) - timedelta(minutes=1)  # the workers started before both

    def found(failed_since: datetime | None) -> set[str]:
        models = Models("caption", CAPTIONER, failed_since=failed_since)
        return {m.key for m in backlog.captions_wanted(conn, scope(bucket), models, "missing",
                                                       FIRST_ID, 50)}  # fmt: skip

    assert found(started) == {"retried.png", "plain.png"}
    restarted = datetime.now(UTC) + timedelta(seconds=1)  # a deploy, a model change...
    assert found(restarted) == {"poison.png", "retried.png", "plain.png"}
    assert found(None) == {"poison.png", "retried.png", "plain.png"}  # a backfill by hand


def test_failed_rows_are_wanted_again_once_their_stage_restarted_and_once_only(
    conn: psycopg.Connection[Any], bucket: str
) -> None:
    stage = f"ingest-{bucket}"  # a stage of its own: the session's database is shared
    failed = add(conn, bucket, "broken.jpg", status=MediaStatus.FAILED)
    add(conn, bucket, "fine.jpg")
    conn.execute(
        "INSERT INTO media_failures (media_id, stage, error_type, message, attempts, origin) "
        "VALUES (%(id)s, %(stage)s, 'OSError', 'decoder crashed', 3, 't/0@1')",
        {"id": failed, "stage": stage},
    )

    def wanted() -> list[tuple[uuid.UUID, str, str]]:
        later = datetime.now(UTC) + timedelta(seconds=5)
        return backlog.failed_before_restart(conn, bucket, later, FIRST_ID, 50)

    assert wanted() == []  # its workers have not started since: the cause is likely there
    worker_starts.record(conn, stage)  # a deploy, a limit raised...
    assert wanted() == [(failed, "broken.jpg", stage)]
    failures.mark_retried(conn, stage, [failed])
    assert wanted() == []  # sent once; failing again waits for the next start
