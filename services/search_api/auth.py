"""API keys on requests: ``Authorization: Bearer glk_…``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from glimpse.db import keys
from services.search_api.context import ApiContext, context

_bearer = HTTPBearer(auto_error=False, description="An API key from `glimpse keys create`")


async def _verified(
    ctx: ApiContext, credentials: HTTPAuthorizationCredentials | None
) -> keys.ApiKey:
    if credentials is None:
        raise HTTPException(
            401,
            "an API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def check() -> keys.ApiKey | None:
        with ctx.pool.connection() as conn:
            return keys.verify(conn, credentials.credentials)

    key = await run_in_threadpool(check)
    if key is None:
        raise HTTPException(
            401, "the API key is unknown or revoked", headers={"WWW-Authenticate": "Bearer"}
        )
    return key


async def require_key(
    ctx: Annotated[ApiContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> keys.ApiKey:
    """For anything that changes data."""
    return await _verified(ctx, credentials)


async def require_key_unless_open(
    request: Request,
    ctx: Annotated[ApiContext, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> keys.ApiKey | None:
    """For reads: open when ``search.open_without_key`` says so (by default: only while
    the API listens on loopback)."""
    if ctx.settings.reads_open_without_key:
        return None
    return await _verified(ctx, credentials)


def client_of(request: Request, key: keys.ApiKey | None) -> str:
    """Whom a rate limit counts: the key when there is one, else the peer address."""
    if key is not None:
        return f"key:{key.id}"
    return f"addr:{request.client.host if request.client else 'unknown'}"
