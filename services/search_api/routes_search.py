"""/v1/search: typed queries, hybrid (vectors + full text), paginated."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from glimpse import suggestions
from glimpse.config import SearchSettings
from glimpse.phases import Phases
from glimpse.relevance import Judged, RelevanceSettings
from glimpse.relevance import search as judged_search
from glimpse.search import KeywordBounds, SearchFilters, VectorQuery, active_sources
from services.search_api.auth import require_key_unless_open
from services.search_api.context import ApiContext, context
from services.search_api.filters import Filters
from services.search_api.hits import ImageMatch, hits_for
from services.search_api.schemas import Hit, SearchResults, Suggestions

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
    found = _find(ctx, text, filters, phases, limit, offset, min_score)
    # searches that answered only: a 503 while the query model loads took no time anywhere
    ctx.search_metrics.observe(phases)
    return found


def _find(
    ctx: ApiContext,
    text: str,
    filters: SearchFilters,
    phases: Phases,
    limit: int,
    offset: int,
    min_score: float | None,
) -> Found:
    settings = ctx.settings.search
    # One embedder and the model of its vectors, taken together: a switch of the active
    # text model in between never pairs this query vector with another model's vectors.
    serving = ctx.embedder.serving()
    model = serving.model
    with phases.phase("embed"):
        query_vec = serving.embedder.embed([text])[0]
    # The images themselves, compared in the joint model's space, when one is active.
    joint = None
    relevance = relevance_settings(settings, min_score)
    if (joint_serving := ctx.joint.serving_if_any()) is not None:
        with phases.phase("joint_embed"):
            joint = VectorQuery(joint_serving.model, joint_serving.embedder.embed([text])[0])
    elif (bridge := ctx.visual_bridge.serving(model.model)) is not None:
        # No joint model: the same words bridged into the visual model's space. The
        # bridge ranks and offers weak guesses; the text side alone makes matches
        # (bench/quality.py: the same recall, fewer sure hits for absent things).
        with phases.phase("joint_embed"):
            joint = VectorQuery(bridge.model, bridge.bridge.to_visual(query_vec))
        relevance = replace(relevance, image_decides=False)
    with ctx.pool.connection() as conn:
        depth = max(settings.candidates, offset + limit + 1)
        judged = judged_search(
            conn,
            text,
            query_vec,
            model,
            filters,
            relevance,
            depth,
            ef_search=settings.ef_search,
            keyword_bounds=KeywordBounds.of(settings),
            sources=active_sources(conn),
            phases=phases,
            joint=joint,
        )
        page = judged[offset : offset + limit]
        with phases.phase("hits_sql"):
            hits = hits_for(
                conn,
                [(j.candidate.media_id, j.candidate.score, j.candidate.similarity) for j in page],
                weak={j.candidate.media_id for j in page if j.weak},
                standout={j.candidate.media_id: j.standout for j in page},
                query=text,
                image=_image_matches(page, relevance),
            )
        return Found(hits, len(judged) > offset + limit, model.model)


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
