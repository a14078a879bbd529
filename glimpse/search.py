"""Hybrid search: vector kNN (cosine, HNSW) and Postgres full-text, fused by RRF.

Each retriever returns its own top candidates (filters applied inside the query, so
HNSW's iterative scan keeps looking until enough rows pass them); reciprocal rank
fusion then merges the lists: the text vectors', full text's and, when a joint
image-text model is active, its image vectors' (compared with the query's vector
from the same model). Vector candidates below ``min_similarity`` are
dropped first, so a query that matches nothing returns few or no hits rather than
the ten least-bad ones.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import psycopg
from pgvector import HalfVector, Vector
from psycopg import errors, sql

from glimpse.config import SearchSettings
from glimpse.db import stage_models
from glimpse.db.backlog import like_prefix
from glimpse.db.statements import Statements
from glimpse.db.vectors import VectorModel
from glimpse.phases import Phases

log = logging.getLogger(__name__)

RRF_K = 60  # the usual constant: damps the head of each list
DEFAULT_EF_SEARCH = 200


@dataclass(frozen=True, slots=True)
class SearchFilters:
    kind: str | None = None
    mime: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    prefix: str | None = None
    label: str | None = None  # tagged with this label by an active label set
    min_confidence: float | None = None  # ... at least this confident (any label if none)


@dataclass(frozen=True, slots=True)
class TextSources:
    """Whose captions and transcripts full text reads: the active captioner's and
    transcriber's, so that a model being filled side by side (or an old one not purged
    yet) never answers. None: any model's (none registered, as in a bare database)."""

    captioner: str | None = None
    transcriber: str | None = None


ANY_SOURCES = TextSources()


def active_sources(conn: psycopg.Connection[Any]) -> TextSources:
    captioner = stage_models.active(conn, "captioner")
    transcriber = stage_models.active(conn, "transcriber")
    return TextSources(
        captioner.model if captioner else None, transcriber.model if transcriber else None
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    media_id: uuid.UUID
    score: float  # fused RRF score
    similarity: float | None  # cosine similarity to the query, when the vector side found it
    keyword_rank: int | None  # 1-based rank in the full-text list, when it matched
    # the image's similarity to the query in the joint model's space, when it found it
    joint_similarity: float | None = None


@dataclass(frozen=True, slots=True)
class VectorQuery:
    """A query vector and the model whose vectors it is compared with (its own)."""

    model: VectorModel
    vector: np.ndarray


_FILTERS = """
    m.status = 'accepted'
    AND (%(kind)s::text IS NULL OR m.kind = %(kind)s)
    AND (%(mime)s::text IS NULL OR m.mime = %(mime)s)
    AND (%(since)s::timestamptz IS NULL OR coalesce(m.captured_at, m.created_at) >= %(since)s)
    AND (%(until)s::timestamptz IS NULL OR coalesce(m.captured_at, m.created_at) < %(until)s)
    AND (%(prefix)s::text IS NULL OR m.key LIKE %(like)s)
    AND ((%(label)s::text IS NULL AND %(min_confidence)s::float8 IS NULL) OR EXISTS (
        SELECT 1 FROM media_labels l
        JOIN label_sets s ON s.name = l.label_set AND s.active_version IS NOT NULL
        WHERE l.media_id = m.id AND (%(label)s::text IS NULL OR l.label = %(label)s)
          AND l.confidence >= coalesce(%(min_confidence)s::float8, 0)))
"""


def _filter_params(filters: SearchFilters) -> dict[str, Any]:
    like = None if filters.prefix is None else like_prefix(filters.prefix)
    return {
        "kind": filters.kind,
        "mime": filters.mime,
        "since": filters.since,
        "until": filters.until,
        "prefix": filters.prefix,
        "like": like,
        "label": filters.label,
        "min_confidence": filters.min_confidence,
    }


def nearest(
    conn: psycopg.Connection[Any],
    model: VectorModel,
    query: np.ndarray,
    filters: SearchFilters,
    limit: int,
    *,
    exclude: uuid.UUID | None = None,
    ef_search: int = DEFAULT_EF_SEARCH,
    table: str = "embeddings",
    vector_type: Literal["halfvec", "vector"] = "halfvec",
) -> list[tuple[uuid.UUID, float]]:
    """(media id, cosine similarity), nearest first, through the model's HNSW index.
    ``table`` and ``vector_type``: the same query on a copy of ``embeddings`` stored as
    another type (bench.search compares fp32 ``vector`` with glimpse's ``halfvec``)."""
    # LOCAL: pooled connections are shared; the settings end with this transaction.
    conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef_search)))
    # relaxed order: keep scanning the graph when filters drop rows (pgvector >= 0.8)
    conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    # a lookup, not the string as given: only a known type name goes into the SQL
    wrap = {"halfvec": HalfVector, "vector": Vector}[vector_type]
    cast = sql.SQL("{}({})").format(sql.SQL(vector_type), sql.Literal(model.dim))
    # Model and kind as literals, not parameters: the partial index's predicate must be
    # provable at plan time, which a generic (prepared) plan with parameters is not.
    rows = conn.execute(
        sql.SQL(
            "SELECT e.media_id, e.embedding::{cast} <=> %(q)s::{cast} AS distance "
            "FROM {table} e JOIN media m ON m.id = e.media_id "
            "WHERE e.model = {model} AND e.kind = {kind} "
            "AND (%(exclude)s::uuid IS NULL OR e.media_id <> %(exclude)s) AND "
            + _FILTERS
            + "ORDER BY e.embedding::{cast} <=> %(q)s::{cast} LIMIT %(limit)s"
        ).format(
            cast=cast,
            table=sql.Identifier(table),
            model=sql.Literal(model.model),
            kind=sql.Literal(model.kind),
        ),
        {
            "q": wrap(query),
            "exclude": exclude,
            "limit": limit,
            **_filter_params(filters),
        },
    ).fetchall()
    # relaxed_order may return neighbours slightly out of order: sort them here.
    hits = [(r["media_id"], 1.0 - float(r["distance"])) for r in rows]
    return sorted(hits, key=lambda hit: -hit[1])


@contextmanager
def time_limit(conn: psycopg.Connection[Any], milliseconds: int) -> Iterator[None]:
    """Statements inside may run ``milliseconds`` each, then raise QueryCanceled. Runs
    in a savepoint, so a cancelled statement leaves the enclosing transaction usable;
    the previous limit is back afterwards."""
    previous = conn.execute("SELECT current_setting('statement_timeout') AS t").fetchone()
    assert previous is not None
    try:
        with conn.transaction():
            conn.execute(
                "SELECT set_config('statement_timeout', %(ms)s, true)", {"ms": str(milliseconds)}
            )
            yield
    finally:
        conn.execute("SELECT set_config('statement_timeout', %(t)s, true)", {"t": previous["t"]})


@dataclass(frozen=True, slots=True)
class KeywordBounds:
    """What one full-text search may cost: matching documents ranked at most, and the
    statement's time limit (None: no bound)."""

    scan_rows: int | None = None
    timeout_ms: int | None = None

    @classmethod
    def of(cls, settings: SearchSettings) -> KeywordBounds:
        return cls(settings.keyword_scan_rows, settings.keyword_timeout_ms)


UNBOUNDED = KeywordBounds()


_TSQUERY = "websearch_to_tsquery('english', %(text)s)"
# Each source's matching documents, as "<columns> FROM <tables> WHERE <its own condition>".
_TEXT_SOURCES = (
    "c.media_id, c.tsv FROM captions c JOIN media m ON m.id = c.media_id "
    "WHERE (%(captioner)s::text IS NULL OR c.model = %(captioner)s) AND c.tsv",
    "t.media_id, t.tsv FROM transcripts t JOIN media m ON m.id = t.media_id "
    "WHERE (%(transcriber)s::text IS NULL OR t.model = %(transcriber)s) AND t.tsv",
    # tags of active label sets, unsure ones left out: a guess is not a match
    "l.media_id, l.tsv FROM media_labels l JOIN label_sets s "
    "ON s.name = l.label_set AND s.active_version IS NOT NULL "
    "JOIN media m ON m.id = l.media_id "
    "WHERE (l.corrected OR l.confidence >= s.unsure_below) AND l.tsv",
)


def _bounded(source: str) -> str:
    """One source's matches, filtered, at most %(scan)s of them. The bound sits in each
    branch, not over their union: Postgres then plans each scan for its first rows (a
    common word's first thousand matches are read in a few ms, where a bitmap of all
    its matches took up to 50 ms at a million captions), and the filters come before
    the bound, so a narrow filter still finds its matches."""
    return f"(SELECT {source} @@ {_TSQUERY} AND {_FILTERS} LIMIT %(scan)s)"


_KEYWORD = (
    "SELECT media_id, max(rank) AS rank FROM ("
    f"SELECT d.media_id, ts_rank_cd(d.tsv, {_TSQUERY}) AS rank FROM ("
    + " UNION ALL ".join(_bounded(source) for source in _TEXT_SOURCES)
    + ") d) matched GROUP BY media_id ORDER BY rank DESC, media_id LIMIT %(limit)s"
)


def keyword(
    conn: psycopg.Connection[Any],
    text: str,
    filters: SearchFilters,
    limit: int,
    bounds: KeywordBounds = UNBOUNDED,
    sources: TextSources = ANY_SOURCES,
) -> list[uuid.UUID]:
    """Media whose caption, transcript or label tag matches ``text`` (websearch syntax),
    best first.

    A word that nearly every caption contains ("photo" in every labels caption) makes
    Postgres rank a large part of the table: up to a second at a million rows. Such a
    word says little anyway, so only the first ``bounds.scan_rows`` matching documents
    of each source (captions, transcripts, tags; in the scan's order) are ranked: every
    match of the rarer words a query is found by, a sample of a common word's.
    ``bounds.timeout_ms`` is the backstop: past it the keyword list is given up (empty)
    and the vector list alone answers."""
    params = {
        "text": text,
        "limit": limit,
        "scan": bounds.scan_rows,  # NULL: no bound
        "captioner": sources.captioner,
        "transcriber": sources.transcriber,
        **_filter_params(filters),
    }
    if bounds.timeout_ms is None:
        return [r["media_id"] for r in conn.execute(_KEYWORD, params)]
    try:
        with time_limit(conn, bounds.timeout_ms):
            return [r["media_id"] for r in conn.execute(_KEYWORD, params)]
    except errors.QueryCanceled:
        log.info(
            "full-text search for %r ran past %d ms: vector hits only", text, bounds.timeout_ms
        )
        return []


def fuse(
    vector_hits: list[tuple[uuid.UUID, float]],
    keyword_hits: list[uuid.UUID],
    joint_hits: list[tuple[uuid.UUID, float]] | None = None,
) -> list[Candidate]:
    """Reciprocal rank fusion of the lists, best first."""
    joint_hits = joint_hits or []
    similarity, joint_similarity = dict(vector_hits), dict(joint_hits)
    rankings = [
        {mid: i for i, (mid, _) in enumerate(vector_hits, start=1)},
        {mid: i for i, mid in enumerate(keyword_hits, start=1)},
        {mid: i for i, (mid, _) in enumerate(joint_hits, start=1)},
    ]
    keyword_rank = rankings[1]
    fused = []
    for mid in set().union(*rankings):
        score = sum(1.0 / (RRF_K + ranks[mid]) for ranks in rankings if mid in ranks)
        fused.append(
            Candidate(mid, score, similarity.get(mid), keyword_rank.get(mid),
                      joint_similarity.get(mid))
        )  # fmt: skip
    fused.sort(key=lambda c: (-c.score, -(c.similarity or 0.0), str(c.media_id)))
    return fused


def start_keyword(
    statements: Statements,
    text: str,
    filters: SearchFilters,
    limit: int,
    bounds: KeywordBounds = UNBOUNDED,
    sources: TextSources | None = ANY_SOURCES,
    phases: Phases | None = None,
) -> Future[list[uuid.UUID]]:
    """``keyword`` as a submitted statement (``sources`` None: the active models', looked
    up on its own connection). It needs no query vector: a search starts it first and
    embeds the query meanwhile."""
    phases = phases or Phases()

    def run(conn: psycopg.Connection[Any]) -> list[uuid.UUID]:
        with phases.phase("keyword_sql"):
            active = active_sources(conn) if sources is None else sources
            return keyword(conn, text, filters, limit, bounds, active)

    return statements.submit(run)


def start_nearest(
    statements: Statements,
    query: VectorQuery,
    filters: SearchFilters,
    limit: int,
    ef_search: int,
    phases: Phases,
    phase: str,
) -> Future[list[tuple[uuid.UUID, float]]]:
    """``nearest`` as a submitted statement, timed as ``phase``."""

    def run(conn: psycopg.Connection[Any]) -> list[tuple[uuid.UUID, float]]:
        with phases.phase(phase):
            return nearest(conn, query.model, query.vector, filters, limit, ef_search=ef_search)

    return statements.submit(run)


def hybrid(
    statements: Statements,
    text: str,
    query: np.ndarray,
    model: VectorModel,
    filters: SearchFilters,
    min_similarity: float,
    candidates: int,
    *,
    ef_search: int = DEFAULT_EF_SEARCH,
    keyword_bounds: KeywordBounds = UNBOUNDED,
    sources: TextSources | None = ANY_SOURCES,
    phases: Phases | None = None,
    joint: VectorQuery | None = None,
    keyword_hits: Future[list[uuid.UUID]] | None = None,
) -> list[Candidate]:
    """Every retriever, fused; the lists run as ``statements`` runs them (side by side
    in the API). ``phases`` (when given) gets the seconds of each (``vector_sql``,
    ``keyword_sql``, ``joint_sql``, ``fuse``). ``joint``: the query's vector of the
    active joint image-text model (its list is judged by relevance, not cut here: its
    similarities live on another scale than the text model's). ``keyword_hits``: the
    full-text list when the caller started it already (``start_keyword``)."""
    phases = phases or Phases()
    if keyword_hits is None:
        keyword_hits = start_keyword(
            statements, text, filters, candidates, keyword_bounds, sources, phases
        )
    nearby = start_nearest(
        statements, VectorQuery(model, query), filters, candidates, ef_search, phases, "vector_sql"
    )
    joint_hits = None
    if joint is not None:
        joint_hits = start_nearest(
            statements, joint, filters, candidates, ef_search, phases, "joint_sql"
        )
    vector_hits = [(mid, sim) for mid, sim in nearby.result() if sim >= min_similarity]
    words, images = keyword_hits.result(), joint_hits.result() if joint_hits else None
    with phases.phase("fuse"):
        return fuse(vector_hits, words, images)
