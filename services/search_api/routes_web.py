"""The web page at ``/`` (static files from ``web/``) and ``/v1/config`` for its limits.

The page is plain files, no build step. Every page response carries a strict
Content-Security-Policy: no inline script, no third-party origin, so a caption, file
name or transcript that reaches the DOM as markup still cannot run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Response
from pydantic import BaseModel

from services.search_api.context import ApiContext, context

WEB_DIR = Path(__file__).parent / "web"
_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}$")  # no slash, no leading dot
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
router = APIRouter()
Ctx = Annotated[ApiContext, Depends(context)]


@dataclass(frozen=True)
class _StaticFile:
    body: bytes
    media_type: str
    etag: str


def _load(name: str) -> _StaticFile:
    """Read per request (files are small): an edited page shows on the next reload."""
    path = WEB_DIR / name
    media_type = _TYPES.get(path.suffix)
    if not _NAME.match(name) or media_type is None or not path.is_file():
        raise HTTPException(404, f"no page file named {name!r}")
    body = path.read_bytes()
    return _StaticFile(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def _serve(name: str, if_none_match: str | None) -> Response:
    static = _load(name)
    headers = {
        # no-cache = revalidate every time: the ETag makes that a cheap 304
        "Cache-Control": "no-cache",
        "ETag": static.etag,
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    }
    if if_none_match and static.etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(static.body, media_type=static.media_type, headers=headers)


@router.get("/", include_in_schema=False)
def index(if_none_match: Annotated[str | None, Header()] = None) -> Response:
    return _serve("index.html", if_none_match)


@router.get("/web/{name}", include_in_schema=False)
def web_file(name: str, if_none_match: Annotated[str | None, Header()] = None) -> Response:
    return _serve(name, if_none_match)


class VoiceLimits(BaseModel):
    max_bytes: int
    max_seconds: float


class ImageSearchLimits(BaseModel):
    enabled: bool  # false: POST /v1/search/image answers 404 (the page hides its pad)
    max_bytes: int


class ClientConfig(BaseModel):
    max_upload_bytes: int
    voice: VoiceLimits
    image_search: ImageSearchLimits


# Open even when reads need a key: limits are no secret, and the page needs them
# before it has a key to check files against.
@router.get("/v1/config", response_model=ClientConfig, tags=["web"])
def client_config(ctx: Ctx) -> ClientConfig:
    """Limits a client checks before it uploads: the same ones the server enforces."""
    voice = ctx.settings.voice
    image = ctx.settings.image_search
    return ClientConfig(
        max_upload_bytes=ctx.settings.limits.max_bytes,
        voice=VoiceLimits(max_bytes=voice.max_bytes, max_seconds=voice.max_seconds),
        image_search=ImageSearchLimits(enabled=image.enabled, max_bytes=image.max_bytes),
    )
