"""glimpse.search against real Postgres + pgvector, with hand-made vectors and captions.

The model here is a made-up 4-d "test/tiny" model: what is tested is the SQL (the
partial HNSW index per model, filters, exclusion, full text, fusion), not a model.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import psycopg
import pytest
from harness import RunningStack
from helpers import connect
from pgvector.psycopg import register_vector

from glimpse.db import captions, media, transcripts, vectors
from glimpse.db.captions import CaptionRow
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.db.pool import open_pool
from glimpse.db.statements import InTurn, SideBySide, Statement, Statements
from glimpse.db.transcripts import TranscriptRow
from glimpse.library_sample import LibrarySample
from glimpse.relevance import RelevanceSettings, background
from glimpse.relevance import search as relevance_search
from glimpse.search import (
    KeywordBounds,
    SearchFilters,
    fuse,
    hybrid,
    keyword,
    nearest,
    start_keyword,
    time_limit,
)

pytestmark = pytest.mark.integration
MODEL = vectors.VectorModel("test/tiny", "text", 4)
OTHER = vectors.VectorModel("test/other", "text", 4)


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def conn(stack: RunningStack) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with connect(stack.settings) as c:
        register_vector(c)
        yield c


def add(
    conn: psycopg.Connection[Any], key: str, text: str, vec: np.ndarray, kind: str = "image"
) -> uuid.UUID:
    row = MediaRow(
        bucket="sqltest",
        key=key,
        status=MediaStatus.ACCEPTED,
        kind=kind,
        mime="image/jpeg" if kind == "image" else "audio/ogg",
        sha256=key,
    )
    media.save(conn, row)
    captions.save(conn, [CaptionRow(row.id, "test/captioner", "r1", text, [])])
    vectors.save(conn, [row.id], MODEL, ["caption"], vec[None, :])
    return row.id


@pytest.fixture
def corpus(conn: psycopg.Connection[Any]) -> dict[str, uuid.UUID]:
    vectors.register_model(conn, MODEL)
    vectors.register_model(conn, OTHER)
    ids = {
        "cat": add(conn, "s/cat.jpg", "a tabby cat asleep on a sofa", unit(1, 0.1, 0, 0)),
        "kitten": add(conn, "s/kitten.jpg", "a small kitten", unit(0.9, 0.3, 0, 0)),
        "rocket": add(conn, "s/rocket.jpg", "a rocket on the launch pad", unit(0, 0, 1, 0)),
        "memo": add(conn, "v/memo.ogg", "remember to feed the cat", unit(0.2, 0, 0, 1), "audio"),
    }
    # the same media under another model: must never leak into MODEL's results
    vectors.save(conn, [ids["rocket"]], OTHER, ["caption"], unit(1, 0.1, 0, 0)[None, :])
    return ids


def test_nearest_uses_the_models_own_index_and_orders_by_cosine(
    conn: psycopg.Connection[Any], corpus: dict[str, uuid.UUID]
) -> None:
    # A handful of rows makes a sequential scan cheaper; ask whether the index *can*
    # serve this query shape, as it does on a real table.
    conn.execute("SET enable_seqscan = off")
    plan = "\n".join(
        r["QUERY PLAN"]
        for r in conn.execute(
            "EXPLAIN SELECT media_id FROM embeddings WHERE model = 'test/tiny' AND kind = 'text' "
            "ORDER BY embedding::halfvec(4) <=> '[1,0,0,0]'::halfvec(4) LIMIT 5"
        )
    )
    assert vectors.index_name(MODEL.model, "text") in plan

    found = nearest(conn, MODEL, unit(1, 0, 0, 0), SearchFilters(), limit=10)

    assert [mid for mid, _ in found][:2] == [corpus["cat"], corpus["kitten"]]
    assert found[0][1] == pytest.approx(0.995, abs=0.01)
    assert corpus["rocket"] == found[-1][0]  # its OTHER-model vector points at cats


def test_filters_and_exclusion(conn: psycopg.Connection[Any], corpus: dict[str, uuid.UUID]) -> None:
    audio = nearest(conn, MODEL, unit(1, 0, 0, 0), SearchFilters(kind="audio"), limit=10)
    prefixed = nearest(conn, MODEL, unit(1, 0, 0, 0), SearchFilters(prefix="s/"), limit=10)
    others = nearest(conn, MODEL, unit(1, 0, 0, 0), SearchFilters(), 10, exclude=corpus["cat"])

    assert [mid for mid, _ in audio] == [corpus["memo"]]
    assert corpus["memo"] not in {mid for mid, _ in prefixed}
    assert corpus["cat"] not in {mid for mid, _ in others}


def test_keyword_search_matches_caption_words(
    conn: psycopg.Connection[Any], corpus: dict[str, uuid.UUID]
) -> None:
    assert set(keyword(conn, "cat", SearchFilters(), 10)) >= {corpus["cat"], corpus["memo"]}
    assert keyword(conn, "launch pads", SearchFilters(), 10) == [corpus["rocket"]]  # stemming
    assert keyword(conn, "'; DROP TABLE media; --", SearchFilters(), 10) == []


def test_keyword_search_matches_transcript_words(
    conn: psycopg.Connection[Any], corpus: dict[str, uuid.UUID]
) -> None:
    words = "Pick up the dry cleaning before Friday"
    spoken = TranscriptRow(corpus["memo"], "test/whisper", "r1", "en", 0.99, 4.2, words, [])
    transcripts.save(conn, spoken)

    assert keyword(conn, "dry cleaning", SearchFilters(), 10) == [corpus["memo"]]
    assert keyword(conn, "dry cleaning", SearchFilters(kind="image"), 10) == []


def test_hybrid_fuses_both_lists_and_drops_weak_vector_matches(
    conn: psycopg.Connection[Any], corpus: dict[str, uuid.UUID]
) -> None:
    query = unit(1, 0.05, 0, 0)
    fused = hybrid(
        InTurn(conn), "cat", query, MODEL, SearchFilters(), min_similarity=0.5, candidates=10
    )

    assert fused[0].media_id == corpus["cat"]  # first in both lists
    assert corpus["rocket"] not in {c.media_id for c in fused}  # similarity ~0, no keyword
    nothing = hybrid(InTurn(conn), "zebra", unit(0, 1, 0, 0), MODEL, SearchFilters(), 0.9, 10)
    assert nothing == []


def test_fuse_is_reciprocal_rank_fusion() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    fused = fuse([(a, 0.9), (b, 0.8)], [b, c])

    assert [x.media_id for x in fused] == [b, a, c]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert (fused[2].similarity, fused[2].keyword_rank) == (None, 2)


def test_time_limit_cancels_a_slow_statement_and_keeps_the_transaction(
    conn: psycopg.Connection[Any],
) -> None:
    before = conn.execute("SHOW statement_timeout").fetchone()

    with pytest.raises(psycopg.errors.QueryCanceled), time_limit(conn, 20):
        conn.execute("SELECT pg_sleep(2)")

    assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    assert conn.execute("SHOW statement_timeout").fetchone() == before


def test_keyword_gives_up_on_a_word_in_every_caption_and_vectors_still_answer(
    conn: psycopg.Connection[Any], corpus: dict[str, uuid.UUID]
) -> None:
    # 50,000 captions that all contain "photo": ranking them all takes far longer
    # than 1 ms. Rolled back at the end: other tests share this database.
    with conn.transaction(force_rollback=True):
        conn.execute(
            "WITH m AS (INSERT INTO media (id, bucket, key, status, kind, sha256) "
            "SELECT gen_random_uuid(), 'slowtext', 'p' || i, 'accepted', 'image', 'p' || i "
            "FROM generate_series(1, 50000) i RETURNING id) "
            "INSERT INTO captions (media_id, model, model_revision, text) "
            "SELECT id, 'test/captioner', 'r1', 'a photo of a thing' FROM m"
        )
        assert len(keyword(conn, "photo", SearchFilters(), 10)) == 10  # no limit: ranked
        assert keyword(conn, "photo", SearchFilters(), 10, KeywordBounds(timeout_ms=1)) == []

        query = unit(1, 0.1, 0, 0)
        fused = hybrid(
            InTurn(conn), "photo", query, MODEL, SearchFilters(), 0.5, 10,
            keyword_bounds=KeywordBounds(timeout_ms=1),
        )  # fmt: skip
        assert fused[0].media_id == corpus["cat"]
        assert all(c.keyword_rank is None for c in fused)


def test_keyword_ranks_a_bounded_sample_of_a_common_words_matches_but_every_rare_match(
    conn: psycopg.Connection[Any],
) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute(
            "WITH m AS (INSERT INTO media (id, bucket, key, status, kind, sha256) "
            "SELECT gen_random_uuid(), 'commonword', 'p' || i, 'accepted', 'image', 'p' || i "
            "FROM generate_series(1, 5000) i RETURNING id) "
            "INSERT INTO captions (media_id, model, model_revision, text) "
            "SELECT id, 'test/captioner', 'r1', 'a photo of a thing' FROM m"
        )
        lighthouse, concert = uuid.uuid4(), uuid.uuid4()
        for mid, kind, text in ((lighthouse, "image", "a photo of a lighthouse"),
                                (concert, "audio", "a photo taken at the concert")):  # fmt: skip
            conn.execute(
                "INSERT INTO media (id, bucket, key, status, kind, sha256) "
                "VALUES (%(id)s, 'commonword', %(key)s, 'accepted', %(kind)s, %(key)s)",
                {"id": mid, "key": str(mid), "kind": kind},
            )
            conn.execute(
                "INSERT INTO captions (media_id, model, model_revision, text) "
                "VALUES (%(id)s, 'test/captioner', 'r1', %(text)s)",
                {"id": mid, "text": text},
            )
        memo = uuid.uuid4()
        conn.execute(
            "INSERT INTO media (id, bucket, key, status, kind, sha256) "
            "VALUES (%(id)s, 'commonword', 'memo.ogg', 'accepted', 'audio', 'memo')",
            {"id": memo},
        )
        transcripts.save(
            conn, TranscriptRow(memo, "test/whisper", "r1", "en", 0.9, 2.0, "send the photo", [])
        )
        bounded = KeywordBounds(scan_rows=100)

        matches = keyword(conn, "photo", SearchFilters(), 1000, bounded)
        # each source ranks up to the bound: the captions a sample, the transcript too
        assert len(matches) == 101 and memo in matches
        assert len(keyword(conn, "photo", SearchFilters(), 1000)) == 1000  # unbounded
        # a word in one document: its match is within any bound
        assert keyword(conn, "photo lighthouse", SearchFilters(), 10, bounded) == [lighthouse]
        # filters apply before the bound: the one audio match is not crowded out
        audio = keyword(conn, "photo", SearchFilters(kind="audio"), 10, bounded)
        assert concert in audio


RELEVANCE = vectors.VectorModel("test/relevance", "text", 8)


@pytest.fixture
def library(conn: psycopg.Connection[Any]) -> dict[str, uuid.UUID]:
    """40 look-alike items (every one at exactly 0.8 from axis 1) and a lighthouse (axis 0)."""
    vectors.register_model(conn, RELEVANCE)
    rng = np.random.default_rng(7)
    ids = {}
    for i in range(40):
        spread = rng.normal(size=6)
        vec = np.concatenate([[0.0, 0.8], 0.6 * spread / np.linalg.norm(spread)])
        ids[f"filler{i}"] = add_to(conn, RELEVANCE, f"r/filler{i}.jpg", "a grey filler", vec)
    lighthouse = unit(1, 0, 0, 0, 0, 0, 0, 0.1)
    ids["lighthouse"] = add_to(conn, RELEVANCE, "r/lighthouse.jpg", "a lighthouse", lighthouse)
    conn.commit()
    return ids


def add_to(
    conn: psycopg.Connection[Any], model: vectors.VectorModel, key: str, text: str, vec: np.ndarray
) -> uuid.UUID:
    row = MediaRow(
        bucket="sqltest",
        key=key,
        status=MediaStatus.ACCEPTED,
        kind="image",
        mime="image/jpeg",
        sha256=key,
    )
    media.save(conn, row)
    captions.save(conn, [CaptionRow(row.id, "test/captioner", "r1", text, [])])
    vectors.save(conn, [row.id], model, ["caption"], vec.astype(np.float32)[None, :])
    return row.id


def test_background_is_the_querys_similarity_to_a_sample_of_the_library(
    conn: psycopg.Connection[Any], library: dict[str, uuid.UUID]
) -> None:
    typical = background(conn, RELEVANCE, unit(0, 1, 0, 0, 0, 0, 0, 0), 256, min_spread=0.02)
    sampled = background(conn, RELEVANCE, unit(0, 1, 0, 0, 0, 0, 0, 0), 10, min_spread=0.02)

    assert typical is not None and sampled is not None
    assert typical.size == 41
    assert typical.median == pytest.approx(0.8, abs=0.01)  # halfvec rounding
    assert typical.spread == 0.02  # all alike: the floor
    assert sampled.size == 10


@pytest.fixture(params=["in turn", "side by side"])
def statements(
    request: pytest.FixtureRequest, stack: RunningStack, conn: psycopg.Connection[Any]
) -> Iterator[Statements]:
    """The search's statements one after another on the test's connection, or side by
    side on pooled connections as the API runs them (they see committed rows only)."""
    if request.param == "in turn":
        yield InTurn(conn)
        return
    with (
        open_pool(stack.settings.database, "search-sql-test") as pool,
        ThreadPoolExecutor(4) as threads,
    ):
        yield SideBySide(pool, threads)


def test_the_hit_that_stands_out_is_shown_and_look_alikes_are_not(
    statements: Statements, library: dict[str, uuid.UUID]
) -> None:
    def show(text: str, query: np.ndarray) -> list[tuple[uuid.UUID, bool]]:
        judged = relevance_search(
            statements, text, query, RELEVANCE, SearchFilters(prefix="r/"), RelevanceSettings(), 100
        )
        return [(j.candidate.media_id, j.weak) for j in judged]

    # the lighthouse stands out; the fillers are all equally (and typically) far
    assert show("tower by the sea", unit(1, 0, 0, 0, 0, 0, 0, 0)) == [
        (library["lighthouse"], False)
    ]
    # close to every filler alike: nothing stands out, so nothing is shown
    assert show("something grey-ish", unit(0, 1, 0, 0, 0, 0, 0, 0)) == []
    # the words match: shown, but weak, since its vector does not stand out
    assert show("lighthouse", unit(0, 1, 0, 0, 0, 0, 0, 0)) == [(library["lighthouse"], True)]


def test_a_full_text_list_started_before_the_vectors_is_the_one_fused(
    statements: Statements, library: dict[str, uuid.UUID]
) -> None:
    # what the API does: full text first, while the query is being embedded
    words = start_keyword(statements, "lighthouse", SearchFilters(prefix="r/"), 100)
    judged = relevance_search(
        statements, "lighthouse", unit(0, 1, 0, 0, 0, 0, 0, 0), RELEVANCE,
        SearchFilters(prefix="r/"), RelevanceSettings(), 100, keyword_hits=words,
    )  # fmt: skip

    assert [(j.candidate.media_id, j.candidate.keyword_rank) for j in judged] == [
        (library["lighthouse"], 1)
    ]


T = TypeVar("T")


class Counted:
    """Statements run in turn, counted."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.inner = InTurn(conn)
        self.count = 0

    def submit(self, statement: Statement[T]) -> Future[T]:
        self.count += 1
        return self.inner.submit(statement)


def test_a_kept_library_sample_judges_as_the_one_read_from_postgres_without_asking(
    conn: psycopg.Connection[Any], library: dict[str, uuid.UUID]
) -> None:
    sample = LibrarySample(size=41, max_age_s=60)  # the whole library: kept once read
    query = unit(1, 0, 0, 0, 0, 0, 0, 0)

    def show(statements: Statements, kept: LibrarySample | None) -> list[tuple[uuid.UUID, bool]]:
        judged = relevance_search(
            statements, "tower by the sea", query, RELEVANCE, SearchFilters(prefix="r/"),
            RelevanceSettings(sample=41), 100, sample=kept,
        )  # fmt: skip
        return [(j.candidate.media_id, j.weak) for j in judged]

    reading, keeping = Counted(conn), Counted(conn)
    assert show(reading, sample) == show(InTurn(conn), None) == [(library["lighthouse"], False)]
    assert sample.kept(RELEVANCE) is not None
    show(keeping, sample)
    assert keeping.count == reading.count - 1  # the typical score needed no statement
