"""The FastAPI application, built from settings by ``create_app``; no globals.

The query embedder (and the visual model image searches use) loads on a background
thread at startup, never per request: the API serves uploads within a second or two,
and searches answer 503 with Retry-After until the model is in (``query_model.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
)
from starlette.middleware.trustedhost import TrustedHostMiddleware

from glimpse.bus import LazyProducer
from glimpse.config import Settings
from glimpse.db.pool import open_pool
from glimpse.heap import settle_when_ready
from glimpse.labels.tagging import ActiveHeads
from glimpse.library_sample import LibrarySample
from glimpse.metrics import ModelMetrics, service_registry
from glimpse.models.whisper_assets import resolve_cache_root
from glimpse.storage import ObjectStore
from services.search_api import (
    problems,
    request_metrics,
    routes_image,
    routes_labels,
    routes_media,
    routes_search,
    routes_uploads,
    routes_voice,
    routes_web,
)
from services.search_api.admission import RateLimiter, WaitingLimit
from services.search_api.body_limit import BodyLimit
from services.search_api.context import ApiContext
from services.search_api.image_queries import ImageQueries
from services.search_api.notifications import QueryNotifications
from services.search_api.origin_guard import OriginGuard
from services.search_api.query_model import JOINT, TEXT, QueryModel, QueryModelLoading
from services.search_api.retention import sweep_forever
from services.search_api.search_metrics import SearchMetrics
from services.search_api.visual_bridge import VisualBridge


def _broker_reachable(bootstrap: str | None) -> str:
    """A TCP connect to the first bootstrap server: uploads land in S3, but nothing the
    API accepts gets processed while the broker is down, so readiness says so."""
    if not bootstrap:
        return "error: no Kafka bootstrap configured"
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return "ok"
    except (OSError, ValueError) as exc:
        return f"error: {exc}"


def _loaded(ctx: ApiContext) -> bool:
    """Whether the query models are in (or failed): the long-lived part of the heap."""
    return (
        (ctx.embedder.loaded or ctx.embedder.error is not None)
        and ctx.image_queries.status() != "loading"
        and ctx.visual_bridge.status() != "fitting"
    )


def _lifespan(
    settings: Settings, registry: CollectorRegistry, settle_heap: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Startup and shutdown: the query model, the pool, the voice-query listener and sweep."""
    # Built here, not per startup: a registry takes each metric name once.
    models = ModelMetrics(registry, "search-api")
    search_metrics = SearchMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.database.url, "database URL is not configured"
        pool = open_pool(settings.database, "search-api")
        embedder = QueryModel(
            TEXT, settings.models, pool, settings.search.model_check_s, observer=models
        )
        embedder.start_loading()
        joint = QueryModel(
            JOINT, settings.models, pool, settings.search.model_check_s, observer=models
        )
        joint.start_loading()
        image_queries = ImageQueries.start(settings, pool, observer=models)
        visual_bridge = VisualBridge(
            embedder,
            image_queries.model if settings.search.text_to_visual else None,
            resolve_cache_root(settings.models, settings.home),
            settings.search.model_check_s,
        )
        visual_bridge.start()
        producer = LazyProducer(settings.kafka)
        store = ObjectStore(settings.s3)
        notifications = QueryNotifications(settings.database.url)
        ctx = ApiContext(
            settings,
            pool,
            store,
            embedder,
            joint,
            producer,
            notifications,
            upload_rate=RateLimiter(settings.api.upload_rate, "uploads"),
            voice_rate=RateLimiter(settings.api.voice_rate, "voice searches"),
            voice_waiting=WaitingLimit(
                settings.voice.max_waiting,
                retry_after_s=max(1, round(settings.voice.wait_s)),
                what="voice searches",
            ),
            search_metrics=search_metrics,
            image_queries=image_queries,
            label_heads=ActiveHeads(store),
            visual_bridge=visual_bridge,
            # a thread per pooled connection: more would only wait for one
            statement_threads=ThreadPoolExecutor(
                settings.database.pool_max, thread_name_prefix="search-sql"
            ),
            library_sample=LibrarySample(
                settings.search.standout_sample, settings.search.standout_sample_max_age_s
            ),
        )
        app.state.glimpse = ctx
        background = [
            asyncio.create_task(notifications.run(), name="listen-voice-queries"),
            asyncio.create_task(
                sweep_forever(pool, ctx.store, settings.voice), name="sweep-voice-queries"
            ),
        ]
        if settle_heap:
            settle = settle_when_ready(lambda: _loaded(ctx))
            background.append(asyncio.create_task(settle, name="settle-heap"))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            embedder.stop()
            joint.stop()
            image_queries.stop()
            visual_bridge.stop()
            ctx.statement_threads.shutdown(wait=True)
            producer.close()
            pool.close()

    return lifespan


def create_app(settings: Settings, *, settle_heap: bool = False) -> FastAPI:
    """``settle_heap``: once the query models are in, freeze what the process holds out
    of the garbage collector's walk (``glimpse.heap``); for the API's own process, not
    one it shares (a test run)."""
    registry = service_registry()

    # /docs loads Swagger UI from the API itself: a CDN script there would run on the
    # origin that holds the page's stored key
    app = FastAPIOffline(
        title="glimpse",
        version="0.1.0",
        summary="Search a bucket of images and voice notes by meaning.",
        lifespan=_lifespan(settings, registry, settle_heap),
    )
    problems.install(app)

    @app.exception_handler(QueryModelLoading)
    async def model_loading(request: Request, exc: QueryModelLoading) -> Response:
        headers = {"Retry-After": str(exc.retry_after_s)}
        return problems.problem(503, "Service unavailable", str(exc), request.url.path, headers)

    app.include_router(routes_search.router)
    app.include_router(routes_media.router)
    app.include_router(routes_labels.router)
    app.include_router(routes_uploads.router)
    app.include_router(routes_voice.router)
    app.include_router(routes_image.router)
    app.include_router(routes_web.router)
    # Innermost first. Every body is bounded as it arrives; one upload request carries at
    # most one maximal file (plus multipart framing).
    app.add_middleware(
        BodyLimit,
        rules=[
            ("/v1/uploads", settings.limits.max_bytes + 1024 * 1024),
            ("/v1/uploads/presign", settings.api.max_presign_body_bytes),
            ("/v1/search/voice", settings.voice.max_bytes),
            ("/v1/search/image", settings.image_search.max_bytes),
            # only POST /v1/labels/{name}/predict takes a body there: a picture
            ("/v1/labels", settings.image_search.max_bytes),
        ],
        default_bytes=settings.api.max_body_bytes,
    )
    app.add_middleware(OriginGuard, allowed_origins=settings.api.allowed_origins)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.api.allowed_hosts)

    @app.middleware("http")
    async def refuse_nul(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Postgres text cannot hold NUL; no legitimate parameter contains one.
        if any("\x00" in value for value in request.query_params.values()):
            return problems.problem(
                400, "Bad request", "query parameters may not contain NUL characters",
                request.url.path,
            )  # fmt: skip
        return await call_next(request)

    request_metrics.install(app, registry)
    app.state.metrics_registry = registry  # what /metrics serves (the deploy tests list it)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz(request: Request, response: Response) -> dict[str, str]:
        ctx: ApiContext = request.app.state.glimpse
        # A loading query model does not make the API unready: uploads, media and
        # thumbnails work, searches answer 503 + Retry-After until it is in.
        model = ctx.embedder
        checks: dict[str, str] = {
            "query_model": "ok" if model.loaded else "loading" if model.error is None else
            f"error: {model.error}"
        }  # fmt: skip
        # the visual model: loading is not unready, and neither is a failure to load it:
        # uploads and typed searches work without it (image searches answer 503)
        checks["image_model"] = ctx.image_queries.status()
        checks["text_to_visual"] = ctx.visual_bridge.status()
        try:
            with ctx.pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {exc}"
        try:
            ctx.store.check_bucket()
            checks["s3"] = "ok"
        except Exception as exc:
            checks["s3"] = f"error: {exc}"
        checks["broker"] = _broker_reachable(settings.kafka.bootstrap)
        checks["voice_listener"] = "ok" if ctx.notifications.listening.is_set() else "connecting"
        optional = {"image_model", "text_to_visual"}  # search works without either
        if any(v not in {"ok", "loading"} for k, v in checks.items() if k not in optional):
            response.status_code = 503
        return checks

    @app.get("/metrics", tags=["ops"])
    def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
