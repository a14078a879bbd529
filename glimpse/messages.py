"""Payloads glimpse puts on its own topics: versioned JSON, validated on both ends."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class MediaAccepted(BaseModel):
    """On ``glimpse.images.accepted`` / ``glimpse.audio.accepted``: one validated object."""

    model_config = ConfigDict(frozen=True)

    version: int = 1
    media_id: uuid.UUID
    bucket: str
    key: str
    etag: str | None
    sha256: str
    kind: str
    mime: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    captured_at: datetime | None = None
    thumbnail_key: str | None = None

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes) -> MediaAccepted:
        return cls.model_validate_json(data)

    @classmethod
    def from_row(cls, fields: Mapping[str, Any]) -> MediaAccepted:
        """The announcement of an accepted media row (read back or just saved)."""
        return cls.model_validate({**fields, "media_id": fields["id"]})


class TextReady(BaseModel):
    """On ``glimpse.captions.ready`` and ``glimpse.transcripts.ready``: text about
    one media item that the embed service turns into a vector."""

    model_config = ConfigDict(frozen=True)

    version: int = 1
    media_id: uuid.UUID
    source: str  # caption | transcript
    model: str  # the model that wrote the text
    text: str

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes) -> TextReady:
        return cls.model_validate_json(data)


class VoiceQueryRequested(BaseModel):
    """On ``glimpse.queries.voice``: a recorded search clip waiting for its transcript."""

    model_config = ConfigDict(frozen=True)

    version: int = 1
    query_id: uuid.UUID
    bucket: str
    key: str  # under queries/, which ingest ignores
    mime: str
    size_bytes: int

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes) -> VoiceQueryRequested:
        return cls.model_validate_json(data)
