"""/v1/search/voice and /v1/queries: search by speaking.

The clip is checked (it must be audio, within the size and length limits), stored
under ``queries/`` (which ingest ignores), recorded as a pending query and put on
``glimpse.queries.voice``. The request then waits, up to ``voice.wait_s``, for the
transcribe service's NOTIFY, and answers the transcript with the hits of a normal
search for it; past the wait it answers 202 with the query's URL instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from glimpse.bus import OutboundMessage
from glimpse.db import voice_queries
from glimpse.db.keys import ApiKey
from glimpse.db.voice_queries import VoiceQueryRow
from glimpse.errors import is_transient
from glimpse.media import ValidatedMedia, validate_media
from glimpse.media.reasons import MediaKind, Rejected, RejectReason
from glimpse.media.sniff import sniff
from glimpse.messages import VoiceQueryRequested
from glimpse.search import SearchFilters
from services.search_api.auth import client_of, require_key_unless_open
from services.search_api.context import ApiContext, context
from services.search_api.filters import Filters
from services.search_api.routes_search import find, next_cursor
from services.search_api.schemas import Hit

router = APIRouter(prefix="/v1", tags=["voice"])
Ctx = Annotated[ApiContext, Depends(context)]
Key = Annotated[ApiKey | None, Depends(require_key_unless_open)]
CLIP_PREFIX = "queries/"
_EXTENSIONS = {
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/flac": "flac",
}
_STATUS_CODES = {
    RejectReason.TOO_LARGE: 413,
    RejectReason.UNSUPPORTED_TYPE: 415,
    RejectReason.MIME_MISMATCH: 415,
}


class VoiceQueryOut(BaseModel):
    query_id: uuid.UUID
    status: Literal["pending", "done", "failed"]
    status_url: str
    transcript: str | None = None
    language: str | None = None
    duration_s: float | None = None
    reason: str | None = None  # failed: machine-readable
    detail: str | None = None  # failed: the reason in words
    hits: list[Hit] = []
    # the next page: GET /v1/search?q=<transcript>&cursor=<next_cursor>
    next_cursor: str | None = None


@router.post(
    "/search/voice",
    response_model=VoiceQueryOut,
    responses={
        202: {"model": VoiceQueryOut, "description": "still transcribing: poll status_url"},
        413: {"description": "the recording is larger than voice.max_bytes"},
        415: {"description": "the body is not an audio recording (or not sent as audio/*)"},
        422: {"description": "not usable: undecodable, too long, or no speech heard"},
        429: {"description": "too many voice searches: from this client, or waiting at once"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the recording itself, e.g. audio/webm;codecs=opus from MediaRecorder",
            "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def voice_search(
    ctx: Ctx,
    key: Key,
    request: Request,
    response: Response,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> VoiceQueryOut:
    """Say what you are looking for: the answer is the transcript and its hits, with
    the filters of `/v1/search`."""
    # An audio type cannot be sent by a cross-site form or "no-cors" fetch without a
    # CORS preflight, which this API never grants.
    declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not declared.startswith("audio/"):
        raise HTTPException(
            415, "send the recording with an audio Content-Type (e.g. audio/webm or audio/wav)"
        )
    ctx.voice_rate.admit(client_of(request, key))
    with ctx.voice_waiting.slot():
        return await _search_by_voice(ctx, request, response, limit, filters)


async def _search_by_voice(
    ctx: ApiContext, request: Request, response: Response, limit: int, filters: SearchFilters
) -> VoiceQueryOut:
    clip = await request.body()
    voice = ctx.settings.voice
    checked = await run_in_threadpool(_checked_audio, ctx, clip)

    query_id = uuid.uuid4()
    row = VoiceQueryRow(
        id=query_id,
        bucket=ctx.settings.s3.bucket,
        clip_key=f"{CLIP_PREFIX}{query_id}.{_EXTENSIONS.get(checked.mime, 'audio')}",
        mime=checked.mime,
        size_bytes=len(clip),
    )
    with ctx.notifications.expect(query_id) as woken:
        await run_in_threadpool(_request_transcript, ctx, row, clip)
        await _wait_for_transcript(ctx, query_id, woken, voice.wait_s)
    answer = await run_in_threadpool(_answer, ctx, query_id, limit, filters)
    if answer is None:
        raise HTTPException(404, "the query expired")  # deleted while we waited: unlikely
    if answer.status == "pending":
        response.status_code = 202
    elif answer.status == "failed":
        raise HTTPException(422, answer.detail or "the recording could not be transcribed")
    return answer


async def _wait_for_transcript(
    ctx: ApiContext, query_id: uuid.UUID, woken: asyncio.Event, wait_s: float
) -> None:
    """Until the row is finished or ``wait_s`` is over (then the answer is 202)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while (remaining := deadline - loop.time()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), timeout=remaining)
        woken.clear()
        if await run_in_threadpool(_status, ctx, query_id) != "pending":
            return


def _status(ctx: ApiContext, query_id: uuid.UUID) -> str | None:
    with ctx.pool.connection() as conn:
        row = voice_queries.get(conn, query_id)
    return None if row is None else str(row["status"])


def _checked_audio(ctx: ApiContext, clip: bytes) -> ValidatedMedia:
    """libmagic first: only what it calls audio reaches a decoder (a small PNG can
    claim 100 megapixels, and decoding it would cost gigabytes)."""
    voice = ctx.settings.voice
    checks = ctx.settings.limits.model_copy(
        update={"max_bytes": voice.max_bytes, "max_audio_seconds": voice.max_seconds}
    )
    try:
        if clip and sniff(clip).kind != MediaKind.AUDIO:
            raise HTTPException(415, "a voice search needs an audio recording, not an image")
        checked = validate_media(clip, checks)
    except Rejected as exc:
        raise HTTPException(_STATUS_CODES.get(exc.reason, 422), _in_words(exc)) from exc
    if checked.kind != MediaKind.AUDIO:  # libmagic said audio, the decoder disagrees
        raise HTTPException(415, f"a voice search needs an audio recording, not {checked.mime}")
    return checked


@router.get(
    "/queries/{query_id}",
    response_model=VoiceQueryOut,
    dependencies=[Depends(require_key_unless_open)],
)
async def get_query(
    ctx: Ctx,
    query_id: uuid.UUID,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> VoiceQueryOut:
    """A voice query's state; once transcribed, its transcript and hits (with the
    filters of `/v1/search`)."""
    answer = await run_in_threadpool(_answer, ctx, query_id, limit, filters, True)
    if answer is None:
        raise HTTPException(404, f"no voice query {query_id} (queries expire after a while)")
    return answer


def _request_transcript(ctx: ApiContext, row: VoiceQueryRow, clip: bytes) -> None:
    """Record the query, store the clip, ask for its transcript (in that order: the
    transcribe service must find both the row and the clip; a row whose clip never
    arrived is marked failed, and the retention sweep removes rows with their clips)."""
    voice = ctx.settings.voice
    awaited_for = timedelta(seconds=voice.wait_s + voice.abandon_after_s)
    with ctx.pool.connection() as conn:
        voice_queries.create(conn, row, awaited_for)
    try:
        ctx.store.put(row.clip_key, clip, row.mime)
    except Exception as exc:
        with ctx.pool.connection() as conn:
            voice_queries.fail(conn, row.id, "unavailable", "the recording could not be stored")
        if is_transient(exc):
            raise HTTPException(
                503, "voice search is unavailable right now (storage is down); try again soon"
            ) from exc
        raise
    request = VoiceQueryRequested(
        query_id=row.id,
        bucket=row.bucket,
        key=row.clip_key,
        mime=row.mime,
        size_bytes=row.size_bytes,
    )
    message = OutboundMessage(
        ctx.settings.kafka.voice_queries_topic, str(row.id).encode(), request.to_json()
    )
    try:
        ctx.producer.send([message], timeout_s=10)
    except Exception as exc:
        if not is_transient(exc):
            raise
        with ctx.pool.connection() as conn:
            voice_queries.fail(conn, row.id, "unavailable", "the transcription queue is down")
        raise HTTPException(
            503, "voice search is unavailable right now (the queue is down); try again soon"
        ) from exc


def _answer(
    ctx: ApiContext,
    query_id: uuid.UUID,
    limit: int,
    filters: SearchFilters,
    polled: bool = False,
) -> VoiceQueryOut | None:
    """The query's state and, once done, its hits. ``polled``: a caller is still
    waiting (it asked), so the query is kept wanted a while longer."""
    with ctx.pool.connection() as conn:
        if polled:
            wanted = timedelta(seconds=ctx.settings.voice.abandon_after_s)
            voice_queries.still_awaited(conn, query_id, wanted)
        row = voice_queries.get(conn, query_id)
    if row is None:
        return None
    answer = _out(row)
    if answer.status == "done" and answer.transcript:
        found = find(ctx, answer.transcript, filters, limit=limit)
        answer.hits, answer.next_cursor = found.hits, next_cursor(0, limit, found.more)
    return answer


def _out(row: dict[str, Any]) -> VoiceQueryOut:
    return VoiceQueryOut(
        query_id=row["id"],
        status=row["status"],
        status_url=f"/v1/queries/{row['id']}",
        transcript=row["transcript"],
        language=row["language"],
        duration_s=row["duration_s"],
        reason=row["reason"],
        detail=row["reason_detail"],
    )


def _in_words(exc: Rejected) -> str:
    if exc.reason == RejectReason.EMPTY:
        return "the recording is empty"
    return f"the recording cannot be used: {exc.message}"
