"""Refuse oversized upload requests from their headers, before any body byte is read."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from services.search_api.problems import PROBLEM_JSON


class BodyLimit:
    """ASGI middleware: requests under ``path_prefix`` must declare a Content-Length of at
    most ``max_bytes`` (browsers and HTTP clients always do for file uploads)."""

    def __init__(self, app: ASGIApp, path_prefix: str, max_bytes: int) -> None:
        self.app = app
        self.path_prefix = path_prefix
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path_prefix):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is None or not length.isdigit():
            await _problem(send, 411, "Length required", "send a Content-Length header")
        elif int(length) > self.max_bytes:
            await _problem(
                send,
                413,
                "Payload too large",
                f"request is {int(length):,} bytes; the limit is {self.max_bytes:,}",
            )
        else:
            await self.app(scope, receive, send)


async def _problem(send: Send, status: int, title: str, detail: str) -> None:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
