"""Requests are counted by route template and status, a crashing handler as a 500."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from services.search_api import request_metrics


def app_with_metrics() -> tuple[FastAPI, CollectorRegistry]:
    registry = CollectorRegistry()
    app = FastAPI()
    request_metrics.install(app, registry)

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        if item_id == 13:
            raise RuntimeError("a bug")
        return {"id": item_id}

    return app, registry


def count(registry: CollectorRegistry, **labels: str) -> float:
    return registry.get_sample_value("glimpse_http_requests_total", labels) or 0.0


def test_requests_are_counted_by_route_template_and_status() -> None:
    app, registry = app_with_metrics()
    client = TestClient(app, raise_server_exceptions=False)

    assert client.get("/items/1").status_code == 200
    assert client.get("/items/2").status_code == 200
    assert client.get("/items/x").status_code == 422
    assert client.get("/nothing-here").status_code == 404

    assert count(registry, route="/items/{item_id}", method="GET", status="200") == 2
    assert count(registry, route="/items/{item_id}", method="GET", status="422") == 1
    assert count(registry, route="unmatched", method="GET", status="404") == 1


def test_a_crashing_handler_is_counted_as_the_500_it_becomes() -> None:
    app, registry = app_with_metrics()
    client = TestClient(app, raise_server_exceptions=False)

    assert client.get("/items/13").status_code == 500

    assert count(registry, route="/items/{item_id}", method="GET", status="500") == 1
    timed = registry.get_sample_value(
        "glimpse_http_request_duration_seconds_count",
        {"route": "/items/{item_id}", "method": "GET", "status": "500"},
    )
    assert timed == 1
