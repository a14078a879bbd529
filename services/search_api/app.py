"""The FastAPI application: built from settings by ``create_app``; no globals."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel

from glimpse.config import Settings
from glimpse.db import media
from glimpse.db.media import MediaStatus
from glimpse.db.pool import open_pool
from glimpse.storage import ObjectStore


class MediaOut(BaseModel):
    id: uuid.UUID
    bucket: str
    key: str
    status: MediaStatus
    reason: str | None
    reason_detail: str | None
    kind: str | None
    mime: str | None
    size_bytes: int | None
    sha256: str | None
    width: int | None
    height: int | None
    duration_s: float | None
    captured_at: datetime | None
    metadata: dict[str, Any]
    thumbnail_key: str | None
    duplicate_of: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class MediaPage(BaseModel):
    items: list[MediaOut]
    next_cursor: str | None


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "glimpse_http_requests",
            "HTTP requests",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "glimpse_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            registry=registry,
        )


def _encode_cursor(created_at: datetime, id_: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(id_)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, id_ = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created), uuid.UUID(id_)
    except (ValueError, TypeError) as exc:
        raise HTTPException(status_code=400, detail="cursor is not valid") from exc


def create_app(settings: Settings) -> FastAPI:
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = open_pool(settings.database, "search-api")
        state["store"] = ObjectStore(settings.s3)
        try:
            yield
        finally:
            state["pool"].close()

    app = FastAPI(title="glimpse", version="0.1.0", lifespan=lifespan)

    @app.middleware("http")
    async def record_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(path, request.method, str(response.status_code)).inc()
        metrics.duration.labels(path, request.method).observe(time.perf_counter() - started)
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(response: Response) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            with state["pool"].connection(timeout=2) as conn:
                conn.execute("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {exc}"
        try:
            state["store"].client.head_bucket(Bucket=settings.s3.bucket)
            checks["s3"] = "ok"
        except Exception as exc:
            checks["s3"] = f"error: {exc}"
        if any(v != "ok" for v in checks.values()):
            response.status_code = 503
        return checks

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/media", response_model=MediaPage)
    async def list_media(
        status: MediaStatus | None = None,
        kind: Annotated[str | None, Query(pattern="^(image|audio)$")] = None,
        prefix: Annotated[str | None, Query(max_length=1024)] = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> MediaPage:
        after = _decode_cursor(cursor) if cursor else None

        def query() -> list[dict[str, Any]]:
            with state["pool"].connection() as conn:
                return media.page(
                    conn, status=status, kind=kind, prefix=prefix, after=after, limit=limit + 1
                )

        rows = await run_in_threadpool(query)
        items = [MediaOut.model_validate(r) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = _encode_cursor(items[-1].created_at, items[-1].id) if more else None
        return MediaPage(items=items, next_cursor=next_cursor)

    @app.get("/v1/media/{media_id}", response_model=MediaOut)
    async def get_media(media_id: uuid.UUID) -> MediaOut:
        def query() -> dict[str, Any] | None:
            with state["pool"].connection() as conn:
                return media.get(conn, media_id)

        row = await run_in_threadpool(query)
        if row is None:
            raise HTTPException(status_code=404, detail=f"no media with id {media_id}")
        return MediaOut.model_validate(row)

    return app
