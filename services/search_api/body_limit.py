"""Bound every request body as it arrives, not only by what its headers declare.

``Content-Length`` over the limit is refused before a byte is read. A body without one
(``Transfer-Encoding: chunked``) is counted while the app reads it: past the limit the
app's read fails, whatever it answered is dropped, and the client gets the 413.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.search_api.problems import send_problem


class BodyTooLarge(Exception):
    """Raised into the app's read when the body passes its route's limit."""


class BodyLimit:
    """ASGI middleware: the first rule whose prefix starts the path sets the limit;
    other paths get ``default_bytes``."""

    def __init__(self, app: ASGIApp, rules: Sequence[tuple[str, int]], default_bytes: int) -> None:
        self.app = app
        # longest prefix first: /v1/uploads/presign before /v1/uploads
        self.rules = sorted(rules, key=lambda rule: len(rule[0]), reverse=True)
        self.default_bytes = default_bytes

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.rules:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.default_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, scope["path"], limit)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(f"body passed {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a failed read: the 413 goes out instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _too_large(send, scope["path"], limit)


async def _too_large(send: Send, path: str, limit: int) -> None:
    await send_problem(
        send,
        413,
        f"the request body is larger than this route's limit of {limit:,} bytes",
        path,
        # the rest of the body is not read: the connection cannot be reused
        headers=[(b"connection", b"close")],
    )
