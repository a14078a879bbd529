"""/v1/uploads: files into the bucket (ingest takes it from there), or a presigned PUT.

Neither route declares its body as a parameter: FastAPI reads declared bodies before it
runs dependencies, so the key would be checked only after a stranger's body was parsed.
Here the key is checked first, then the (size-bounded, see body_limit) body is read.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from glimpse.db.keys import ApiKey
from glimpse.db.media import media_id
from glimpse.events import DERIVED_PREFIXES
from glimpse.media.sniff import CLAIMABLE_MIMES
from services.search_api.auth import client_of, require_key
from services.search_api.context import ApiContext, context

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])
Ctx = Annotated[ApiContext, Depends(context)]
Key = Annotated[ApiKey, Depends(require_key)]
#: files in one upload request; the body limit bounds their bytes
MAX_FILES = 100
_UNSAFE = re.compile(r"[^\w.\- ]+")


class UploadItem(BaseModel):
    filename: str
    status: str  # stored: ingest will validate it; rejected: not stored (see reason)
    id: uuid.UUID | None = None
    key: str | None = None
    size_bytes: int | None = None
    status_url: str | None = None
    reason: str | None = None
    detail: str | None = None


class UploadResults(BaseModel):
    items: list[UploadItem]


class PresignRequest(BaseModel):
    filename: str = Field(min_length=1, max_length=255)
    size_bytes: int = Field(ge=0)
    content_type: str | None = Field(default=None, max_length=100)
    prefix: str = Field(default="uploads/", max_length=200)


class PresignedUpload(BaseModel):
    id: uuid.UUID
    key: str
    method: str = "PUT"
    url: str
    headers: dict[str, str]
    expires_in: int
    status_url: str


def _key_for(prefix: str, filename: str) -> str:
    """``prefix/YYYY/MM/<random>-<name>``: uploads never overwrite each other."""
    # the slash first: "thumbnails" must meet the guard as "thumbnails/"
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    unprintable = any(not ch.isprintable() for ch in prefix)
    if unprintable or ".." in prefix.split("/") or prefix.startswith(("/", *DERIVED_PREFIXES)):
        raise HTTPException(400, f"prefix {prefix!r} is not allowed")
    name = _UNSAFE.sub("_", filename.rsplit("/", 1)[-1]).strip(" .") or "file"
    return f"{prefix}{datetime.now(UTC):%Y/%m}/{uuid.uuid4().hex[:8]}-{name[-120:]}"


def _content_type(filename: str, declared: str | None) -> str:
    return declared or mimetypes.guess_type(filename)[0] or "application/octet-stream"


_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "One or more images or audio files",
                    },
                    "prefix": {"type": "string", "maxLength": 200, "default": "uploads/"},
                },
            }
        }
    },
}


@router.post(
    "",
    status_code=202,
    response_model=UploadResults,
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={413: {"description": "the request is larger than one file may be"}},
)
async def upload(ctx: Ctx, request: Request, key: Key) -> UploadResults:
    """Store files in the bucket. Answers one item per file, in order, each with its
    media id; ``status_url`` shows ingest's verdict (accepted, duplicate, rejected)."""
    ctx.upload_rate.admit(client_of(request, key))
    try:
        async with request.form(max_files=MAX_FILES, max_fields=10) as form:
            files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            prefix = form.get("prefix", "uploads/")
            if not isinstance(prefix, str) or len(prefix) > 200:
                raise HTTPException(422, "prefix: a text of at most 200 characters")
            if not files:
                raise HTTPException(422, "files: send one or more files as multipart form data")
            return await _store_all(ctx, files, prefix)
    except MultiPartException as exc:
        raise HTTPException(400, f"the form could not be read: {exc.message}") from exc


async def _store_all(ctx: ApiContext, files: list[UploadFile], prefix: str) -> UploadResults:
    limit = ctx.settings.limits.max_bytes
    items = []
    for file in files:
        filename = file.filename or "file"
        size = file.size or 0
        if size > limit:
            items.append(
                UploadItem(
                    filename=filename,
                    status="rejected",
                    reason="too_large",
                    size_bytes=size,
                    detail=f"file is {size:,} bytes; the limit is {limit:,} bytes",
                )
            )
            continue
        key = _key_for(prefix, filename)
        content_type = _content_type(filename, file.content_type)
        await run_in_threadpool(ctx.store.upload_file, key, file.file, content_type)
        mid = media_id(ctx.store.bucket, key)
        items.append(
            UploadItem(
                filename=filename,
                status="stored",
                id=mid,
                key=key,
                size_bytes=size,
                status_url=f"/v1/media/{mid}",
            )
        )
    return UploadResults(items=items)


@router.post(
    "/presign",
    response_model=PresignedUpload,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PresignRequest.model_json_schema()}},
        }
    },
    responses={
        413: {"description": "the file is over the size limit"},
        415: {"description": "the file type is not an accepted image or audio type"},
    },
)
async def presign(ctx: Ctx, request: Request, key: Key) -> PresignedUpload:
    """A short-lived URL to PUT one file straight into the bucket. The URL is signed for
    the declared size and type: the PUT must send exactly those headers."""
    ctx.upload_rate.admit(client_of(request, key))
    try:
        wanted = PresignRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
    limit = ctx.settings.limits.max_bytes
    if wanted.size_bytes > limit:
        raise HTTPException(413, f"file is {wanted.size_bytes:,} bytes; the limit is {limit:,}")
    object_key = _key_for(wanted.prefix, wanted.filename)
    content_type = _content_type(wanted.filename, wanted.content_type)
    if content_type.split(";")[0].strip().lower() not in CLAIMABLE_MIMES:
        raise HTTPException(415, f"{content_type} is not an image or audio type glimpse accepts")
    seconds = ctx.settings.s3.presign_seconds
    url = ctx.store.presigned_put(object_key, content_type, wanted.size_bytes, seconds)
    mid = media_id(ctx.store.bucket, object_key)
    return PresignedUpload(
        id=mid,
        key=object_key,
        url=url,
        headers={"Content-Type": content_type, "Content-Length": str(wanted.size_bytes)},
        expires_in=seconds,
        status_url=f"/v1/media/{mid}",
    )
