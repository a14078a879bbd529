"""Every request counted and timed by route, method and status, crashes included.

A handler that raises never produces a response for ``call_next`` to return; it is
counted as the 500 the client gets, so error-ratio alerts see crashes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram


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
            ["route", "method", "status"],
            registry=registry,
            # up to 30 s: a voice search waits up to voice.wait_s (15 s) for its transcript
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 15, 30),
        )

    def observe(self, request: Request, status: int, seconds: float) -> None:
        # the route template, never the raw path: ids in paths would explode the series
        route = getattr(request.scope.get("route"), "path", "unmatched")
        self.requests.labels(route, request.method, str(status)).inc()
        self.duration.labels(route, request.method, str(status)).observe(seconds)


def install(app: FastAPI, registry: CollectorRegistry) -> ApiMetrics:
    metrics = ApiMetrics(registry)

    @app.middleware("http")
    async def record_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            metrics.observe(request, 500, time.perf_counter() - started)
            raise
        metrics.observe(request, response.status_code, time.perf_counter() - started)
        return response

    return metrics
