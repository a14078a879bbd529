"""Errors as RFC 9457 problem JSON: every 4xx/5xx says what went wrong in words."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Send

PROBLEM_JSON = "application/problem+json"
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    503: "Service unavailable",
}


def problem(
    status: int, title: str, detail: str, instance: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": instance,
        },
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


async def send_problem(
    send: Send,
    status: int,
    detail: str,
    instance: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """The same answer from plain ASGI middleware, which runs outside FastAPI's handlers."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
            "instance": instance,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException) -> JSONResponse:
        title = _TITLES.get(exc.status_code, "Error")
        return problem(exc.status_code, title, str(exc.detail), request.url.path, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors():
            where = ".".join(
                str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body")
            )
            parts.append(
                f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", "")
            )
        return problem(422, "Invalid request", "; ".join(parts), request.url.path)
