"""/v1/uploads: files into the bucket (ingest takes it from there), or a presigned PUT."""

from __future__ import annotations

import mimetypes
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from glimpse.db.media import media_id
from glimpse.events import DERIVED_PREFIXES
from services.search_api.auth import require_key
from services.search_api.context import ApiContext, context

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], dependencies=[Depends(require_key)])
Ctx = Annotated[ApiContext, Depends(context)]
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
    unprintable = any(not ch.isprintable() for ch in prefix)
    if unprintable or ".." in prefix.split("/") or prefix.startswith(("/", *DERIVED_PREFIXES)):
        raise HTTPException(400, f"prefix {prefix!r} is not allowed")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    name = _UNSAFE.sub("_", filename.rsplit("/", 1)[-1]).strip(" .") or "file"
    return f"{prefix}{datetime.now(UTC):%Y/%m}/{uuid.uuid4().hex[:8]}-{name[-120:]}"


def _content_type(filename: str, declared: str | None) -> str:
    return declared or mimetypes.guess_type(filename)[0] or "application/octet-stream"


@router.post("", status_code=202, response_model=UploadResults)
async def upload(
    ctx: Ctx,
    files: Annotated[list[UploadFile], File(description="One or more images or audio files")],
    prefix: Annotated[str, Form(max_length=200)] = "uploads/",
) -> UploadResults:
    """Store files in the bucket. Answers one item per file, in order, each with its
    media id; ``status_url`` shows ingest's verdict (accepted, duplicate, rejected)."""
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
        await run_in_threadpool(
            ctx.store.client.upload_fileobj,
            file.file,
            ctx.store.bucket,
            key,
            ExtraArgs={"ContentType": _content_type(filename, file.content_type)},
        )
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


@router.post("/presign", response_model=PresignedUpload)
async def presign(ctx: Ctx, request: PresignRequest) -> PresignedUpload:
    """A short-lived URL to PUT one file straight into the bucket."""
    limit = ctx.settings.limits.max_bytes
    if request.size_bytes > limit:
        raise HTTPException(413, f"file is {request.size_bytes:,} bytes; the limit is {limit:,}")
    key = _key_for(request.prefix, request.filename)
    content_type = _content_type(request.filename, request.content_type)
    seconds = ctx.settings.s3.presign_seconds
    url = ctx.store.client.generate_presigned_url(
        "put_object",
        Params={"Bucket": ctx.store.bucket, "Key": key, "ContentType": content_type},
        ExpiresIn=seconds,
    )
    mid = media_id(ctx.store.bucket, key)
    return PresignedUpload(
        id=mid,
        key=key,
        url=url,
        headers={"Content-Type": content_type},
        expires_in=seconds,
        status_url=f"/v1/media/{mid}",
    )
