"""Bulk upload of local files into the bucket (what `glimpse ingest` does)."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from boto3.s3.transfer import TransferConfig

from glimpse.db import media
from glimpse.storage import ObjectStore

# Files above 16 MiB go up in 8 MiB parts (multipart), four at a time.
TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=4
)


@dataclass(frozen=True, slots=True)
class Upload:
    path: Path
    key: str


def plan(paths: Iterable[Path], prefix: str = "") -> list[Upload]:
    """Files to upload and their keys: a folder's files keep their path below it."""
    uploads: list[Upload] = []
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                uploads.append(Upload(file, prefix + file.relative_to(path).as_posix()))
        elif path.is_file():
            uploads.append(Upload(path, prefix + path.name))
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return uploads


def upload(store: ObjectStore, item: Upload, on_bytes: Callable[[int], None]) -> None:
    content_type = mimetypes.guess_type(item.path.name)[0] or "application/octet-stream"
    with item.path.open("rb") as file:
        store.upload_file(item.key, file, content_type, transfer=TRANSFER, on_bytes=on_bytes)


def wait_for_outcomes(
    conn: psycopg.Connection[Any], bucket: str, etags: dict[str, str | None], timeout_s: float
) -> Iterator[dict[str, Any]]:
    """Yield each key's media row once ingest has recorded the uploaded version (by ETag),
    until the timeout."""
    pending = {media.media_id(bucket, key): etag for key, etag in etags.items()}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        rows = conn.execute(
            "SELECT * FROM media WHERE id = ANY(%(ids)s)", {"ids": list(pending)}
        ).fetchall()
        for row in rows:
            if row["etag"] == pending[row["id"]] or row["status"] == "deleted":
                del pending[row["id"]]
                yield row
        if pending:
            time.sleep(0.25)
