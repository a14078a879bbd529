"""Browsers on other sites cannot make the API change anything; other clients can."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from services.search_api.origin_guard import OriginGuard


async def ok(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture
def http() -> TestClient:
    app = Starlette(routes=[Route("/", ok, methods=["GET", "POST"])])
    guarded = OriginGuard(app, allowed_origins=["https://photos.example.org/"])
    return TestClient(guarded, base_url="http://127.0.0.1:8080")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),  # curl, scripts, the CLI: no Origin
        ({"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, 200),
        ({"Origin": "https://photos.example.org"}, 200),  # listed in api.allowed_origins
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "http://127.0.0.1:3000", "Sec-Fetch-Site": "same-site"}, 403),
        ({"Origin": "null"}, 403),  # a sandboxed frame or a file:// page
        ({"Sec-Fetch-Site": "cross-site"}, 403),
    ],
)
def test_posts_by_origin(http: TestClient, headers: dict[str, str], status: int) -> None:
    response = http.post("/", headers=headers)
    assert response.status_code == status
    if status == 403:
        assert response.headers["content-type"] == "application/problem+json"


def test_reads_are_not_its_business(http: TestClient) -> None:
    assert http.get("/", headers={"Origin": "https://evil.example"}).status_code == 200
