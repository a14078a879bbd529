"""/v1/search/image: search by a picture (a photo, or a drawing from the page's pad).

The picture becomes a visual vector the way an upload does (``image_queries.py``), and
the library's images are ranked by visual similarity to it: the same kNN query as
``/v1/media/{id}/similar`` (``glimpse.search.nearest``), with the filters of
``/v1/search`` (``filters.py``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from glimpse.db.keys import ApiKey
from glimpse.search import SearchFilters, nearest
from services.search_api.auth import require_key_unless_open
from services.search_api.context import ApiContext, context
from services.search_api.filters import Filters
from services.search_api.hits import hits_for
from services.search_api.image_queries import ImageQuery, picture_body
from services.search_api.schemas import Hit

router = APIRouter(prefix="/v1", tags=["search"])
Ctx = Annotated[ApiContext, Depends(context)]
Key = Annotated[ApiKey | None, Depends(require_key_unless_open)]


class ImageSearchResults(BaseModel):
    hits: list[Hit]  # most alike first; score and similarity are the cosine similarity
    model: str  # the visual model whose vectors answered
    mime: str  # what the picture was read as


@router.post(
    "/search/image",
    response_model=ImageSearchResults,
    responses={
        404: {"description": "search by image is turned off on this server"},
        413: {"description": "the picture is larger than image_search.max_bytes"},
        415: {"description": "the body is not a picture (or not sent as image/*)"},
        422: {"description": "not usable: damaged, or more pixels than image_search.max_pixels"},
        429: {"description": "too many searches by image from this client"},
        503: {"description": "the image model is still loading: retry after Retry-After"},
    },
    openapi_extra=picture_body("the page sends its drawing as image/png"),
)
async def image_search(
    ctx: Ctx,
    key: Key,
    request: Request,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ImageSearchResults:
    """Images that look like the picture sent, most alike first."""
    query = await ctx.image_queries.read(request, key)
    hits = await run_in_threadpool(_alike, ctx, query, filters, limit)
    return ImageSearchResults(hits=hits, model=query.model.model, mime=query.mime)


def _alike(ctx: ApiContext, query: ImageQuery, filters: SearchFilters, limit: int) -> list[Hit]:
    with ctx.pool.connection() as conn:
        found = nearest(
            conn, query.model, query.vector, filters, limit, ef_search=ctx.settings.search.ef_search
        )
        return hits_for(conn, [(mid, sim, sim) for mid, sim in found])
