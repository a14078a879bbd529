"""Tagging stored items (the ``labels`` backfill stage) and what the tags give search:
pages in id order from a cursor, ``--missing`` skipping what the active version tagged,
corrections kept, unsure tags listed, the label filter and full text."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
import pytest
from doubles import MemoryStore
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row

from glimpse.db import label_sets, media
from glimpse.db.backlog import Scope
from glimpse.db.label_sets import Version
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.db.vectors import VectorModel
from glimpse.labels import artifact
from glimpse.labels.artifact import Artifact
from glimpse.labels.head import LabelHead, predict
from glimpse.labels.retag import LabelWork
from glimpse.labels.tagging import ActiveHeads
from glimpse.search import SearchFilters, keyword, nearest

FAR = datetime(2100, 1, 1, tzinfo=UTC)
# cat: the first axis, dog: the second; a vector between them is a coin toss
HEAD = LabelHead(("cat", "dog"), np.array([[6.0, 0, 0, 0], [0, 6.0, 0, 0]]), np.zeros(2), "")
CAT, DOG, EITHER = [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0.7071, 0.7071, 0, 0]


@pytest.fixture
def conn(postgres: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    # pgvector's types registered, as in the workers' pools (the CLI's connections are
    # not: tagging reads vectors either way)
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        register_vector(conn)
        yield conn
        conn.rollback()  # nothing a test wrote stays


class Library:
    """A bucket of its own with images, their visual vectors and an active label set."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.bucket = f"labels-{uuid.uuid4().hex[:8]}"
        self.visual = VectorModel(f"test/visual-{self.bucket}", "visual", 4)
        self.set = self.bucket  # a set name of its own
        label_sets.next_version(conn, self.set, unsure_below=0.6)
        self.version = Version(self.set, 1, self.visual.model, ["cat", "dog"], {}, 4,
                               "k", "sha", FAR)  # fmt: skip
        label_sets.add_version(conn, self.version)
        label_sets.activate(conn, self.set, 1, None)
        self.head = LabelHead(HEAD.classes, HEAD.coef, HEAD.intercept, self.visual.model)

    def add(self, key: str, vector: list[float], caption_word: str = "") -> uuid.UUID:
        row = MediaRow(bucket=self.bucket, key=key, status=MediaStatus.ACCEPTED, kind="image",
                       mime="image/png", sha256=f"{self.bucket}/{key}")  # fmt: skip
        media.save(self.conn, row)
        # as text: works whether or not the connection knows pgvector's types
        self.conn.execute(
            "INSERT INTO embeddings (media_id, model, kind, source, dim, embedding) VALUES "
            "(%(id)s, %(model)s, 'visual', 'image', 4, %(v)s::halfvec)",
            {"id": row.id, "model": self.visual.model, "v": str(vector)},
        )
        return row.id

    def work(self, mode: str = "missing") -> LabelWork:
        scope = Scope(self.bucket, FAR)
        return LabelWork([(self.version, self.head)], self.visual.model, mode, scope)  # type: ignore[arg-type]

    def tags(self) -> dict[str, tuple[str, float, bool]]:
        rows = self.conn.execute(
            "SELECT m.key, l.label, l.confidence, l.corrected FROM media_labels l "
            "JOIN media m ON m.id = l.media_id WHERE l.label_set = %(set)s",
            {"set": self.set},
        ).fetchall()
        return {r["key"]: (r["label"], round(r["confidence"], 3), r["corrected"]) for r in rows}


def run(work: LabelWork, conn: psycopg.Connection[Any], page: int = 2) -> list[str]:
    """Every page to the end; the cursors it went through."""
    cursors, cursor = [], None
    while True:
        messages, cursor = work.page(conn, cursor, page)
        assert messages == []  # tagged in place, nothing goes through Kafka
        if cursor is None:
            return cursors
        cursors.append(cursor)


def test_stored_items_are_tagged_page_by_page(conn: psycopg.Connection[Any]) -> None:
    lib = Library(conn)
    ids = [lib.add("a.png", CAT), lib.add("b.png", DOG), lib.add("c.png", CAT)]
    work = lib.work()

    assert work.count(conn) == 3
    cursors = run(work, conn, page=2)

    assert cursors == [str(i) for i in sorted(ids)[1::2]] + [str(max(ids))]
    tags = lib.tags()
    assert {k: t[0] for k, t in tags.items()} == {"a.png": "cat", "b.png": "dog", "c.png": "cat"}
    assert tags["a.png"][1] == pytest.approx(0.998, abs=1e-3)
    assert work.done(conn, str(max(ids)), datetime(2000, 1, 1, tzinfo=UTC)) == 3
    assert work.count(conn) == 0  # --missing: nothing left for this version
    assert run(lib.work(), conn) == []


def test_a_correction_survives_tagging_again(conn: psycopg.Connection[Any]) -> None:
    lib = Library(conn)
    mid = lib.add("a.png", CAT)
    run(lib.work(), conn)

    label_sets.correct(conn, lib.set, 1, mid, "dog")
    run(lib.work("all"), conn)

    assert lib.tags() == {"a.png": ("dog", 1.0, True)}
    assert label_sets.corrections(conn, lib.set) == [(mid, "a.png", "dog")]


def test_unsure_tags_are_listed_least_sure_first(conn: psycopg.Connection[Any]) -> None:
    lib = Library(conn)
    lib.add("sure.png", CAT)
    lib.add("either.png", EITHER)
    lib.add("leaning.png", [0.72, 0.69, 0, 0])
    run(lib.work(), conn)

    unsure, total = label_sets.unsure(conn, lib.set, 10)

    assert total == 2
    assert [u.key for u in unsure] == ["either.png", "leaning.png"]
    assert unsure[0].confidence == pytest.approx(0.5, abs=0.01)
    assert unsure[0].alternatives[0][0] in {"cat", "dog"}
    assert label_sets.counts(conn, lib.set) == {"tagged": 3, "unsure": 2, "corrected": 0}


def test_search_filters_by_label_and_finds_label_words(conn: psycopg.Connection[Any]) -> None:
    lib = Library(conn)
    cat, dog = lib.add("cat.png", CAT), lib.add("dog.png", DOG)
    unsure = lib.add("unsure.png", EITHER)  # a tie: tagged cat (the first), 50 %
    run(lib.work(), conn)

    def found(text: str) -> set[uuid.UUID]:
        return set(keyword(conn, text, SearchFilters(), 1000)) & {cat, dog, unsure}

    def near(label: str | None = None, sure: float | None = None) -> set[uuid.UUID]:
        filters = SearchFilters(label=label, min_confidence=sure)
        hits = nearest(conn, lib.visual, np.array(CAT), filters, 1000)
        return {mid for mid, _ in hits} & {cat, dog, unsure}

    assert lib.tags()["unsure.png"] == ("cat", 0.5, False)
    assert found("dog") == {dog}
    assert found("cat") == {cat}  # an unsure tag is no full-text match
    assert near() == {cat, dog, unsure}
    assert near(label="cat") == {cat, unsure}
    assert near(label="cat", sure=0.9) == {cat}
    assert near(sure=0.9) == {cat, dog}
    label_sets.activate(conn, lib.set, None, None)  # deactivated: its tags are not searched
    assert found("dog") == set()
    assert near(label="cat") == set()


def test_the_active_heads_are_loaded_from_the_bucket_once(conn: psycopg.Connection[Any]) -> None:
    store = MemoryStore()
    lib = Library(conn)
    key, sha = artifact.save(store.as_store(), Artifact(lib.set, 2, lib.head, {}))
    label_sets.add_version(conn, Version(lib.set, 2, lib.visual.model, ["cat", "dog"], {}, 4,
                                         key, sha, FAR))  # fmt: skip
    label_sets.activate(conn, lib.set, 2, None)
    heads = ActiveHeads(store.as_store())

    version, head = heads.get(conn, lib.set) or (None, None)
    del store.objects[key]  # loaded once: the next call does not read it again
    again = heads.get(conn, lib.set)

    assert version is not None and version.version == 2
    assert head is not None and np.array_equal(head.coef, lib.head.coef)
    assert again is not None and again[1] is head
    assert predict(head, [CAT], top=1) == [[("cat", pytest.approx(0.9975, abs=1e-4))]]
    label_sets.activate(conn, lib.set, None, None)
    assert heads.get(conn, lib.set) is None


def test_tagging_reads_vectors_on_a_connection_without_pgvector_types(postgres: str) -> None:
    """The CLI's connections do not register pgvector's types."""
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        lib = Library(conn)
        mid = lib.add("a.png", DOG)

        run(lib.work(), conn)

        assert lib.tags() == {"a.png": ("dog", pytest.approx(0.9975, abs=1e-3), False)}
        stored = label_sets.stored_vectors(conn, [mid], lib.visual)
        assert stored[mid].tolist() == DOG
        conn.rollback()
