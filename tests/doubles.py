"""Small stand-ins for the bucket and the models, for handler tests against real Postgres."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, cast

import psycopg

from glimpse.bus import InboundMessage
from glimpse.db import media
from glimpse.db.media import MediaRow, MediaStatus
from glimpse.messages import MediaAccepted
from glimpse.storage import ObjectInfo, ObjectStore


class MemoryStore:
    """The part of ``ObjectStore`` handlers read through, over a dict."""

    def __init__(self, bucket: str = "media") -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}

    def read(self, key: str, max_bytes: int) -> bytes | None:
        return self.objects.get(key)

    def head(self, key: str) -> ObjectInfo | None:
        data = self.objects.get(key)
        return None if data is None else ObjectInfo(key, len(data), None, None)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data

    def download(self, key: str, path: Path, max_bytes: int) -> bool:
        data = self.objects.get(key)
        if data is not None:
            path.write_bytes(data)
        return data is not None

    def as_store(self) -> ObjectStore:
        return cast(ObjectStore, self)


def accepted(
    conn: psycopg.Connection[Any],
    kind: str,
    thumbnail_key: str | None = None,
    sha256: str | None = None,
) -> MediaAccepted:
    """An accepted media row with a fresh key, and its announcement."""
    key = f"{kind}/{uuid.uuid4()}"
    row = MediaRow(
        bucket="media",
        key=key,
        status=MediaStatus.ACCEPTED,
        kind=kind,
        mime="audio/ogg" if kind == "audio" else "image/jpeg",
        size_bytes=100,
        sha256=sha256 or uuid.uuid4().hex,
        thumbnail_key=thumbnail_key,
    )
    media.save(conn, row)
    return MediaAccepted.model_validate({**row.columns(), "media_id": row.id})


def message(topic: str, item: MediaAccepted, offset: int = 0) -> InboundMessage:
    return InboundMessage(topic, 0, offset, str(item.media_id).encode(), item.to_json(), 0)
