"""The model registry in Postgres: one active model per role, load specs, index builds
that never block writes, switches and purges. Each test gets a schema of its own (the
registry is per role, and other tests register models in the shared one)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from glimpse import search
from glimpse.db import captions, coverage, media, stage_models, transcripts, vectors
from glimpse.db.captions import CaptionRow
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.db.migrate import migrate
from glimpse.db.transcripts import TranscriptRow
from glimpse.model_switch import SwitchRefused, activate, purge
from glimpse.search import SearchFilters

OLD = vectors.VectorModel("text/old", "text", 4)
NEW = vectors.VectorModel("text/new", "text", 4)


@pytest.fixture
def url(postgres: str) -> Iterator[str]:
    """The schema in a schema of its own (pgvector's types stay in public)."""
    name = f"registry_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    own = make_conninfo(postgres, options=f"-c search_path={name},public")
    migrate(own)
    yield own
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {name} CASCADE")


def connect(url: str) -> psycopg.Connection[dict[str, Any]]:
    conn = psycopg.connect(url, autocommit=True, row_factory=dict_row)
    register_vector(conn)
    return conn


@pytest.fixture
def conn(url: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with connect(url) as c:
        yield c


def add_item(conn: psycopg.Connection[Any], key: str) -> uuid.UUID:
    row = MediaRow(bucket="registry", key=key, status=MediaStatus.ACCEPTED, kind="image",
                   mime="image/png", sha256=key)  # fmt: skip
    media.save(conn, row)
    return row.id


def vector(conn: psycopg.Connection[Any], mid: uuid.UUID, vm: vectors.VectorModel) -> None:
    vectors.save(conn, [mid], vm, ["caption"], np.ones((1, vm.dim), dtype=np.float32))


def test_the_first_model_of_a_role_is_active_and_a_later_one_is_not(
    conn: psycopg.Connection[Any],
) -> None:
    stage_models.register(conn, "captioner", "cap/a", "r1", {"captioner": "labels"})
    stage_models.register(conn, "captioner", "cap/b", "r1")
    stage_models.register(conn, "captioner", "cap/a", "r2", {"captioner": "labels"})  # restart

    active = stage_models.active(conn, "captioner")
    assert active is not None
    assert (active.model, active.revision, active.spec) == ("cap/a", "r2", {"captioner": "labels"})
    assert [r.model for r in stage_models.registered(conn, "captioner")] == ["cap/a", "cap/b"]
    current = stage_models.current(conn, "captioner")  # what backfill looks for: last started
    assert current is not None and current.model == "cap/a"


def test_registering_a_vector_model_builds_a_valid_index_and_registers_it_under_its_kind(
    conn: psycopg.Connection[Any],
) -> None:
    vectors.register_model(conn, OLD, "rev", {"text_model": ""})
    vectors.register_model(conn, NEW)

    assert vectors.index_state(conn, vectors.index_name(NEW.model, "text")) == "valid"
    assert vectors.active_model(conn, "text") == OLD
    assert vectors.model_of(conn, NEW.model, "text") == NEW
    assert [(r.model, r.active) for r in stage_models.registered(conn, "text")] == [
        ("text/old", True),
        ("text/new", False),
    ]


def test_a_transaction_connection_is_refused_for_the_concurrent_index_build(url: str) -> None:
    with psycopg.connect(url) as conn, pytest.raises(ValueError, match="autocommit"):
        vectors.register_model(conn, OLD)


def test_an_invalid_index_left_by_a_crashed_build_is_dropped_and_built_again(
    url: str, conn: psycopg.Connection[Any]
) -> None:
    name = vectors.index_name(NEW.model, "text")
    crash_a_concurrent_build(url, conn, name)
    assert vectors.index_state(conn, name) == "invalid"

    vectors.register_model(conn, NEW)

    assert vectors.index_state(conn, name) == "valid"


def crash_a_concurrent_build(url: str, conn: psycopg.Connection[Any], name: str) -> None:
    """What a worker killed in the middle of CREATE INDEX CONCURRENTLY leaves: the index
    in the catalog, marked invalid."""
    mid = add_item(conn, "crash.png")
    with connect(url) as blocker, connect(url) as builder:
        pid = builder.info.backend_pid
        with blocker.transaction():
            vector(blocker, mid, NEW)  # an open write: the build waits for it to end
            thread = threading.Thread(target=_build_ignoring_errors, args=(builder, name))
            thread.start()
            deadline = time.monotonic() + 30
            while vectors.index_state(conn, name) != "invalid" and time.monotonic() < deadline:
                time.sleep(0.05)
            conn.execute("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid})
            thread.join()


def _build_ignoring_errors(conn: psycopg.Connection[Any], name: str) -> None:
    with contextlib.suppress(psycopg.OperationalError):
        conn.execute(
            f"CREATE INDEX CONCURRENTLY {name} ON embeddings USING hnsw "
            "((embedding::halfvec(4)) halfvec_cosine_ops) WHERE model = 'text/new'"
        )


def test_two_workers_registering_one_model_at_once_both_succeed_with_one_valid_index(
    url: str,
) -> None:
    with connect(url) as conn:
        item = add_item(conn, "race.png")
        vector(conn, item, NEW)  # rows to index, so the builds take a moment
    errors: list[BaseException] = []

    def register() -> None:
        try:
            with connect(url) as conn:
                vectors.register_model(conn, NEW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with connect(url) as conn:
        assert vectors.index_state(conn, vectors.index_name(NEW.model, "text")) == "valid"
        assert len(stage_models.registered(conn, "text")) == 1


def test_writes_go_on_while_a_new_models_index_is_built(url: str) -> None:
    with connect(url) as conn:
        vectors.register_model(conn, OLD)
        items = [add_item(conn, f"live{i}.png") for i in range(3)]
    with connect(url) as writer:
        # A transaction of the old model's worker is open while the index is built:
        # CONCURRENTLY waits for it to end instead of making it wait.
        with writer.transaction():
            vector(writer, items[0], OLD)
            builder = threading.Thread(target=register, args=(url, NEW))
            builder.start()
            builder.join(timeout=1)
            assert builder.is_alive()  # waiting for the open transaction, not blocking it
            vector(writer, items[1], OLD)  # and writes in it still go through
        builder.join()
        vector(writer, items[2], NEW)
        assert vectors.index_state(writer, vectors.index_name(NEW.model, "text")) == "valid"


def register(url: str, vm: vectors.VectorModel) -> None:
    with connect(url) as conn:
        vectors.register_model(conn, vm)


def test_coverage_counts_accepted_items_with_a_result_of_each_model(
    conn: psycopg.Connection[Any],
) -> None:
    vectors.register_model(conn, OLD)
    vectors.register_model(conn, NEW)
    items = [add_item(conn, f"cover{i}.png") for i in range(3)]
    for mid in items:
        vector(conn, mid, OLD)
    vector(conn, items[0], NEW)
    rejected = MediaRow(bucket="registry", key="rejected.png", status=MediaStatus.REJECTED,
                        kind="image", mime="image/png", sha256="rejected")  # fmt: skip
    media.save(conn, rejected)
    vector(conn, rejected.id, NEW)  # not searchable: not counted

    assert coverage.items_covered(conn, "text") == {"text/old": 3, "text/new": 1}
    assert coverage.items_covered(conn, "text", ["text/new"]) == {"text/new": 1}
    assert coverage.items_covered(conn, "visual") == {}


def test_activate_refuses_a_model_covering_fewer_items_unless_forced(
    conn: psycopg.Connection[Any],
) -> None:
    vectors.register_model(conn, OLD)
    vectors.register_model(conn, NEW)
    items = [add_item(conn, f"act{i}.png") for i in range(3)]
    for mid in items:
        vector(conn, mid, OLD)
    vector(conn, items[0], NEW)

    with pytest.raises(SwitchRefused, match="covers 1 items, text/old covers 3: 2 would drop"):
        activate(conn, "text", NEW.model)
    assert vectors.active_model(conn, "text") == OLD

    done = activate(conn, "text", NEW.model, force=True)
    assert (done.previous, done.covered, done.previously_covered) == ("text/old", 1, 3)
    assert vectors.active_model(conn, "text") == NEW
    active = [r.model for r in stage_models.registered(conn, "text") if r.active]
    assert active == ["text/new"]


def test_activate_switches_a_model_that_covers_as_much_and_says_so_to_listeners(
    url: str, conn: psycopg.Connection[Any]
) -> None:
    vectors.register_model(conn, OLD)
    vectors.register_model(conn, NEW)
    mid = add_item(conn, "switch.png")
    vector(conn, mid, OLD)
    vector(conn, mid, NEW)
    with connect(url) as listener:
        listener.execute(f"LISTEN {stage_models.NOTIFY_CHANNEL}")

        activate(conn, "text", NEW.model)

        heard = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert heard == ["text"]
    assert vectors.active_model(conn, "text") == NEW


def test_activate_refuses_an_unknown_model(conn: psycopg.Connection[Any]) -> None:
    vectors.register_model(conn, OLD)
    with pytest.raises(SwitchRefused, match="not a registered text model"):
        activate(conn, "text", "text/nobody")


def test_purge_refuses_the_active_model_and_removes_every_trace_of_another(
    conn: psycopg.Connection[Any],
) -> None:
    vectors.register_model(conn, OLD)
    vectors.register_model(conn, NEW)
    stage_models.register(conn, "captioner", "cap/keep", "r1")
    stage_models.register(conn, "captioner", "text/old", "r1")  # one id in two roles
    mid = add_item(conn, "purge.png")
    vector(conn, mid, OLD)
    vector(conn, mid, NEW)
    captions.save(conn, [CaptionRow(mid, "text/old", "r1", "an old caption", [])])
    transcripts.save(conn, TranscriptRow(mid, "text/old", "r1", "en", 1.0, 1.0, "old words", []))

    with pytest.raises(SwitchRefused, match="active text model"):
        purge(conn, OLD.model)
    activate(conn, "text", NEW.model)

    done = purge(conn, OLD.model)

    assert sorted(done.roles) == ["captioner", "text"]
    assert done.rows == {"captions": 1, "transcripts": 1, "embeddings": 1}
    for table in ("captions", "transcripts", "embeddings", "stage_models", "vector_models"):
        left = conn.execute(
            f"SELECT count(*) AS n FROM {table} WHERE model = 'text/old'"
        ).fetchone()
        assert left is not None and left["n"] == 0, table
    assert vectors.index_state(conn, vectors.index_name(OLD.model, "text")) == "missing"
    assert vectors.active_model(conn, "text") == NEW
    assert [r.model for r in stage_models.registered(conn, "captioner")] == ["cap/keep"]


def test_full_text_reads_only_the_active_captioners_and_transcribers_texts(
    conn: psycopg.Connection[Any],
) -> None:
    stage_models.register(conn, "captioner", "cap/old", "r1")
    stage_models.register(conn, "captioner", "cap/new", "r1")
    stage_models.register(conn, "transcriber", "asr/old", "r1")
    stage_models.register(conn, "transcriber", "asr/new", "r1")
    photo, note = add_item(conn, "words.png"), add_item(conn, "words.ogg")
    captions.save(conn, [CaptionRow(photo, "cap/old", "r1", "a lighthouse at dusk", []),
                         CaptionRow(photo, "cap/new", "r1", "a tower by the sea", [])])  # fmt: skip
    transcripts.save(conn, TranscriptRow(note, "asr/old", "r1", "en", 1.0, 1.0, "buy milk", []))
    transcripts.save(conn, TranscriptRow(note, "asr/new", "r1", "en", 1.0, 1.0, "by milk", []))

    def found(text: str) -> list[uuid.UUID]:
        return search.keyword(conn, text, SearchFilters(), 10, sources=search.active_sources(conn))

    assert search.active_sources(conn) == search.TextSources("cap/old", "asr/old")
    assert (found("lighthouse"), found("tower"), found("buy")) == ([photo], [], [note])
    with conn.transaction():
        stage_models.set_active(conn, "captioner", "cap/new")
    assert (found("lighthouse"), found("tower")) == ([], [photo])
    assert search.keyword(conn, "lighthouse", SearchFilters(), 10) == [photo]  # any model's
