"""/v1/media: list, details, thumbnail, original, similar."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from glimpse.db import media, vectors
from glimpse.db.media import MediaStatus
from glimpse.search import nearest
from services.search_api.auth import require_key_unless_open
from services.search_api.context import ApiContext, context
from services.search_api.filters import Filters
from services.search_api.hits import hits_for
from services.search_api.schemas import Hit, MediaOut, MediaPage

router = APIRouter(
    prefix="/v1/media", tags=["media"], dependencies=[Depends(require_key_unless_open)]
)
Ctx = Annotated[ApiContext, Depends(context)]


def _encode_cursor(created_at: datetime, id_: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(
        json.dumps([created_at.isoformat(), str(id_)]).encode()
    ).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, id_ = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created), uuid.UUID(id_)
    except (ValueError, TypeError) as exc:
        raise HTTPException(400, "cursor is not valid: pass back next_cursor unchanged") from exc


@router.get("", response_model=MediaPage)
async def list_media(
    ctx: Ctx,
    status: MediaStatus | None = None,
    kind: Annotated[str | None, Query(pattern="^(image|audio)$")] = None,
    prefix: Annotated[str | None, Query(max_length=1024)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MediaPage:
    """Newest first. E.g. every rejected file with its reason: ``?status=rejected``."""
    after = _decode_cursor(cursor) if cursor else None

    def query() -> list[dict[str, Any]]:
        with ctx.pool.connection() as conn:
            rows = media.page(
                conn, status=status, kind=kind, prefix=prefix, after=after, limit=limit + 1
            )
            extra = media.details(conn, [r["id"] for r in rows[:limit]])
        return [extra.get(r["id"], r) for r in rows[:limit]] + rows[limit:]

    rows = await run_in_threadpool(query)
    items = [MediaOut.model_validate(r) for r in rows[:limit]]
    more = len(rows) > limit
    return MediaPage(
        items=items,
        next_cursor=_encode_cursor(items[-1].created_at, items[-1].id) if more else None,
    )


@router.get("/{media_id}", response_model=MediaOut)
async def get_media(ctx: Ctx, media_id: uuid.UUID) -> MediaOut:
    """Status (``searchable`` says when search can find it), reason, caption, metadata."""

    def query() -> dict[str, Any] | None:
        with ctx.pool.connection() as conn:
            return media.details(conn, [media_id]).get(media_id)

    row = await run_in_threadpool(query)
    if row is None:
        raise HTTPException(404, f"no media with id {media_id}")
    return MediaOut.model_validate(row)


def _stream(
    ctx: ApiContext, key: str, mime: str, filename: str | None, etag: str | None = None
) -> StreamingResponse:
    """The object's bytes; with ``etag``, only while it is still the object ingest
    checked (an overwrite is served only once ingest has checked the new bytes)."""
    opened = ctx.store.open(key, if_match=etag)
    if opened is None:
        if etag and ctx.store.head(key) is not None:
            raise HTTPException(
                409, "the object was replaced after it was checked; it is being checked again"
            )
        raise HTTPException(404, "the object is no longer in the bucket")
    headers = {
        "X-Content-Type-Options": "nosniff",  # never let a browser reinterpret an upload
        "Cache-Control": "private, max-age=3600",
        "Content-Length": str(opened.info.size),
    }
    if filename:
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{_quote(filename)}"
    return StreamingResponse(opened.chunks(), media_type=mime, headers=headers)


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


async def _row(ctx: ApiContext, media_id: uuid.UUID) -> dict[str, Any]:
    def query() -> dict[str, Any] | None:
        with ctx.pool.connection() as conn:
            return media.get(conn, media_id)

    row = await run_in_threadpool(query)
    if row is None:
        raise HTTPException(404, f"no media with id {media_id}")
    return row


@router.get("/{media_id}/thumbnail", response_class=StreamingResponse)
async def thumbnail(ctx: Ctx, media_id: uuid.UUID) -> StreamingResponse:
    """The 512-px JPEG thumbnail (images only)."""
    row = await _row(ctx, media_id)
    if not row["thumbnail_key"]:
        raise HTTPException(404, f"media {media_id} has no thumbnail ({row['status']})")
    return await run_in_threadpool(_stream, ctx, row["thumbnail_key"], "image/jpeg", None)


@router.get("/{media_id}/original", response_class=StreamingResponse)
async def original(ctx: Ctx, media_id: uuid.UUID) -> StreamingResponse:
    """The uploaded file, served with the MIME type ingest verified."""
    row = await _row(ctx, media_id)
    if row["status"] not in (MediaStatus.ACCEPTED, MediaStatus.DUPLICATE):
        raise HTTPException(404, f"media {media_id} is {row['status']}: nothing to serve")
    name = row["key"].rsplit("/", 1)[-1]
    return await run_in_threadpool(_stream, ctx, row["key"], row["mime"], name, row["etag"])


class SimilarResults(BaseModel):
    id: uuid.UUID
    hits: list[Hit]


@router.get("/{media_id}/similar", response_model=SimilarResults)
async def similar(
    ctx: Ctx,
    media_id: uuid.UUID,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SimilarResults:
    """Images that look alike (visual vectors of the active visual model), with the
    filters of `/v1/search` ("more like this, in this folder")."""

    def query() -> list[Hit] | None:
        with ctx.pool.connection() as conn:
            model = vectors.active_model(conn, "visual")
            vec = vectors.vector_of(conn, media_id, model) if model else None
            if model is None or vec is None:
                return None
            ef_search = ctx.settings.search.ef_search
            found = nearest(conn, model, vec, filters, limit, exclude=media_id, ef_search=ef_search)
            return hits_for(conn, [(mid, sim, sim) for mid, sim in found])

    hits = await run_in_threadpool(query)
    if hits is None:
        raise HTTPException(404, f"media {media_id} has no visual vector (yet)")
    return SimilarResults(id=media_id, hits=hits)
