"""Request bodies are bounded as they arrive, declared or not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.search_api.body_limit import BodyLimit

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def echo_size(request: Request) -> JSONResponse:
    try:
        body = await request.body()
    except Exception:  # the app's own answer to a failed read: must never reach a client
        return JSONResponse({"oops": True}, status_code=400)
    return JSONResponse({"size": len(body)})


def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/{path:path}", echo_size, methods=["POST"])])
    limited = BodyLimit(app, rules=[("/voice", 1000), ("/up", 10_000)], default_bytes=100)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://t")


async def chunks(n: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield b"x" * size


@pytest.mark.parametrize(
    ("path", "size", "status"),
    [("/voice", 1000, 200), ("/voice", 1001, 413), ("/up/files", 5000, 200), ("/other", 101, 413)],
)
async def test_declared_sizes_are_checked_per_route(path: str, size: int, status: int) -> None:
    async with client() as http:
        response = await http.post(path, content=b"x" * size)
    assert response.status_code == status


async def test_a_chunked_body_is_cut_at_the_limit() -> None:
    async with client() as http:
        response = await http.post("/voice", content=chunks(50, 100))  # 5,000 undeclared
        small = await http.post("/voice", content=chunks(5, 100))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "1,000 bytes" in response.json()["detail"]
    assert small.json() == {"size": 500}


def test_the_longest_prefix_wins_and_prefixes_match_whole_segments() -> None:
    limit = BodyLimit(
        Starlette(), rules=[("/v1/uploads", 9), ("/v1/uploads/presign", 1)], default_bytes=5
    )
    assert limit.limit_for("/v1/uploads") == 9
    assert limit.limit_for("/v1/uploads/presign") == 1
    assert limit.limit_for("/v1/uploadsX") == 5
