"""/v1/search: typed queries, hybrid (vectors + full text), paginated."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from glimpse import suggestions
from glimpse.config import SearchSettings
from glimpse.db.statements import InTurn, SideBySide, Statements
from glimpse.phases import Phases
from glimpse.relevance import Judged, RelevanceSettings
from glimpse.relevance import search as judged_search
from glimpse.search import KeywordBounds, SearchFilters, VectorQuery, start_keyword
from services.search_api.auth import require_key_unless_open
from services.search_api.context import ApiContext, context
from services.search_api.filters import Filters
from services.search_api.hits import ImageMatch, hits_for
from services.search_api.query_model import Serving
from services.search_api.schemas import Hit, SearchResults, Suggestions

if TYPE_CHECKING:
    from glimpse.models.text import TextEmbedder

router = APIRouter(prefix="/v1", tags=["search"], dependencies=[Depends(require_key_unless_open)])
Ctx = Annotated[ApiContext, Depends(context)]
MAX_RESULTS = 1000  # deepest page a cursor can reach


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except ValueError as exc:
        raise HTTPException(400, "cursor is not valid: pass back next_cursor unchanged") from exc
    if not 0 <= offset < MAX_RESULTS:
        raise HTTPException(400, "cursor is out of range")
    return offset


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def next_cursor(offset: int, limit: int, more: bool) -> str | None:
    following = offset + limit
    return _cursor(following) if more and following < MAX_RESULTS else None


def relevance_settings(settings: SearchSettings, min_score: float | None) -> RelevanceSettings:
    """The configured relevance policy; an explicit ``min_score`` asks for a fixed cutoff."""
    if min_score is not None:
        return RelevanceSettings(policy="fixed", min_similarity=min_score)
    return RelevanceSettings(
        policy=settings.cutoff,
        strong=settings.standout_strong,
        weak=settings.standout_weak,
        weak_limit=settings.standout_weak_limit,
        sample=settings.standout_sample,
        min_similarity=settings.min_similarity,
    )


@dataclass(frozen=True, slots=True)
class Found:
    hits: list[Hit]
    more: bool  # another page follows
    model: str  # the text model whose vectors answered


@dataclass(frozen=True, slots=True)
class QueryVectors:
    """A typed query's vectors: the text model's, and the images' space (the joint
    model's, or the text vector bridged into the visual model's)."""

    text: VectorQuery
    image: VectorQuery | None
    bridged: bool  # image is the bridge's guess, not a joint model's


def find(
    ctx: ApiContext,
    text: str,
    filters: SearchFilters,
    *,
    limit: int,
    offset: int = 0,
    min_score: float | None = None,
    phases: Phases | None = None,
) -> Found:
    """One page of hybrid search hits for ``text``. Blocking: call it from a worker
    thread. ``phases``: where to add up each phase's time (bench/search.py reads them)."""
    phases = Phases() if phases is None else phases
    # One embedder and the model of its vectors, taken together: a switch of the active
    # text model in between never pairs this query vector with another model's vectors.
    serving = ctx.embedder.serving()
    page = Page(limit, offset, min_score)
    with _statements(ctx) as statements:
        # Full text needs no vector: it runs while the query is embedded.
        words = start_keyword(
            statements,
            text,
            filters,
            page.depth(ctx.settings.search),
            KeywordBounds.of(ctx.settings.search),
            None,
            phases,
        )
        vectors = embed_query(ctx, serving, text, phases)
        found = find_embedded(ctx, statements, text, vectors, filters, page, phases, words)
    # searches that answered only: a 503 while the query model loads took no time anywhere
    ctx.search_metrics.observe(phases)
    return found


@contextmanager
def _statements(ctx: ApiContext) -> Iterator[Statements]:
    """Side by side on pooled connections; with ``search.side_by_side`` off, one after
    another on one connection held for the whole search."""
    if ctx.settings.search.side_by_side:
        yield SideBySide(ctx.pool, ctx.statement_threads)
        return
    with ctx.pool.connection() as conn:
        yield InTurn(conn)


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    offset: int = 0
    min_score: float | None = None  # a fixed cutoff instead of the relevance policy

    def depth(self, settings: SearchSettings) -> int:
        """Candidates each list gives: enough for this page and to know if one follows."""
        return max(settings.candidates, self.offset + self.limit + 1)


def embed_query(
    ctx: ApiContext, serving: Serving[TextEmbedder], text: str, phases: Phases
) -> QueryVectors:
    """``text`` through the serving text model, and into the images' space: the active
    joint model's text side when there is one, else the bridge (when fitted for this
    text model), else none."""
    with phases.phase("embed"):
        vector = serving.embedder.embed([text])[0]
    if (joint_serving := ctx.joint.serving_if_any()) is not None:
        with phases.phase("joint_embed"):
            joint = VectorQuery(joint_serving.model, joint_serving.embedder.embed([text])[0])
        return QueryVectors(VectorQuery(serving.model, vector), joint, bridged=False)
    if (bridge := ctx.visual_bridge.serving(serving.model.model)) is not None:
        with phases.phase("joint_embed"):
            bridged = VectorQuery(bridge.model, bridge.bridge.to_visual(vector))
        return QueryVectors(VectorQuery(serving.model, vector), bridged, bridged=True)
    return QueryVectors(VectorQuery(serving.model, vector), None, bridged=False)


def find_embedded(
    ctx: ApiContext,
    statements: Statements,
    text: str,
    vectors: QueryVectors,
    filters: SearchFilters,
    page: Page,
    phases: Phases,
    keyword_hits: Future[list[uuid.UUID]] | None = None,
) -> Found:
    """``find`` once the query is embedded (``keyword_hits``: its full-text list, if
    started already): the lists, relevance, and the page's hits."""
    settings = ctx.settings.search
    relevance = relevance_settings(settings, page.min_score)
    if vectors.bridged:
        # The bridge ranks and offers weak guesses; the text side alone makes matches
        # (bench/quality.py: the same recall, fewer sure hits for absent things).
        relevance = replace(relevance, image_decides=False)
    judged = judged_search(
        statements,
        text,
        vectors.text.vector,
        vectors.text.model,
        filters,
        relevance,
        page.depth(settings),
        ef_search=settings.ef_search,
        keyword_bounds=KeywordBounds.of(settings),
        sources=None,  # the active models', looked up beside the full-text statement
        phases=phases,
        joint=vectors.image,
        keyword_hits=keyword_hits,
        sample=ctx.library_sample,
    )
    shown = judged[page.offset : page.offset + page.limit]

    def details(conn: psycopg.Connection[Any]) -> list[Hit]:
        with phases.phase("hits_sql"):
            return hits_for(
                conn,
                [(j.candidate.media_id, j.candidate.score, j.candidate.similarity) for j in shown],
                weak={j.candidate.media_id for j in shown if j.weak},
                standout={j.candidate.media_id: j.standout for j in shown},
                query=text,
                image=_image_matches(shown, relevance),
            )

    hits = statements.submit(details).result()
    return Found(hits, len(judged) > page.offset + page.limit, vectors.text.model.model)


def _image_matches(page: list[Judged], relevance: RelevanceSettings) -> dict[uuid.UUID, ImageMatch]:
    """How each hit's image compares with the query (joint model's space, or bridged)."""
    return {
        j.candidate.media_id: ImageMatch(
            j.candidate.joint_similarity,
            j.joint_standout,
            j.joint_standout is not None and j.joint_standout >= relevance.image_weak_at,
        )
        for j in page
        if j.candidate.joint_similarity is not None
    }


@router.get("/search", response_model=SearchResults)
async def search(
    ctx: Ctx,
    q: Annotated[str, Query(min_length=1, max_length=500, description="What to look for")],
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    min_score: Annotated[
        float | None, Query(ge=-1, le=1, description="Min cosine similarity")
    ] = None,
) -> SearchResults:
    """Hybrid search: nearest caption vectors and full-text matches, fused by rank. What
    is shown depends on how far each hit stands out from the library's typical score for
    this query; weak matches come marked (`weak`). `min_score` asks for a fixed cosine
    cutoff instead. `label` keeps items an active label set tagged with that label (with
    `min_confidence`: at least that sure)."""
    # Control characters carry no meaning and Postgres refuses NUL in text.
    text = "".join(ch for ch in q if ch.isprintable() or ch.isspace()).strip()
    if not text:
        raise HTTPException(400, "q is empty: type what you are looking for")
    offset = _offset(cursor)
    found = await run_in_threadpool(
        find, ctx, text, filters, limit=limit, offset=offset, min_score=min_score
    )
    return SearchResults(
        query=text,
        hits=found.hits,
        next_cursor=next_cursor(offset, limit, found.more),
        model=found.model,
    )


def _suggest(ctx: ApiContext, limit: int) -> list[str]:
    with ctx.pool.connection() as conn:
        return suggestions.from_library(conn, limit)


@router.get("/search/suggestions", response_model=Suggestions)
async def suggest(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=20)] = 5) -> Suggestions:
    """Things to try searching for: the library's most frequent confident labels."""
    return Suggestions(suggestions=await run_in_threadpool(_suggest, ctx, limit))
