"""Refuse requests that change something when a browser sent them from another site.

A page on any site can make a visitor's browser POST to ``127.0.0.1`` (a "no-cors"
request needs no permission); the browser then says where it came from in ``Origin``
and ``Sec-Fetch-Site``. Clients that are not browsers send neither and pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from services.search_api.problems import send_problem

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class OriginGuard:
    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(origin.rstrip("/").lower() for origin in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in _SAFE_METHODS:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            origin = headers.get("origin")
            if not self._allowed(origin, headers.get("host", ""), headers.get("sec-fetch-site")):
                await send_problem(
                    send,
                    403,
                    f"requests from {origin or 'another site'} may not change anything here; "
                    "add the origin to api.allowed_origins if it is yours",
                    scope["path"],
                )
                return
        await self.app(scope, receive, send)

    def _allowed(self, origin: str | None, host: str, fetch_site: str | None) -> bool:
        if origin is None or origin == "null":
            # "null": sandboxed frames and file:// pages; only trust it without a site hint
            return origin is None and fetch_site in (None, "same-origin", "none")
        if origin.rstrip("/").lower() in self.allowed:
            return True
        return urlsplit(origin).netloc.lower() == host.lower() and fetch_site != "cross-site"
