"""The S3 bucket, through boto3: HEAD, bounded reads, writes, listings, presigned URLs."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from glimpse.config import S3Settings

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from types_boto3_s3 import S3Client

_CHUNK = 1024 * 1024


class ObjectTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"object is larger than the {limit}-byte limit (read {size} bytes)")
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    last_modified: datetime | None
    content_type: str | None = None
    # user metadata (x-amz-meta-*), keys lower-case
    metadata: Mapping[str, str] = field(default_factory=dict)


class OpenedObject:
    """A GET whose body has not been read yet; close it (``with``) either way."""

    def __init__(self, info: ObjectInfo, body: StreamingBody) -> None:
        self.info = info
        self._body = body

    def read(self, max_bytes: int) -> bytes:
        """Stream the body, never holding more than ``max_bytes``."""
        return b"".join(self._bounded(max_bytes))

    def _bounded(self, max_bytes: int) -> Iterator[bytes]:
        """The body a chunk at a time; ``ObjectTooLarge`` once it passes ``max_bytes``."""
        total = 0
        while chunk := self._body.read(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise ObjectTooLarge(total, max_bytes)
            yield chunk

    def chunks(self, size: int = 256 * 1024) -> Iterator[bytes]:
        """The body piece by piece (for streaming it on), closed at the end."""
        try:
            yield from self._body.iter_chunks(size)
        finally:
            self._body.close()

    def copy_to(self, out: BinaryIO, max_bytes: int) -> int:
        """Stream the body into ``out`` a chunk at a time; the bytes written."""
        total = 0
        for chunk in self._bounded(max_bytes):
            total += out.write(chunk)
        return total

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> OpenedObject:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _strip_quotes(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


def _is_changed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in {"412", "PreconditionFailed"}


class ObjectStore:
    """One bucket's objects. Build one per process, in ``main()``."""

    def __init__(self, s3: S3Settings) -> None:
        assert s3.endpoint, "S3 endpoint is not configured"
        self.bucket = s3.bucket
        self._presign_seconds = s3.presign_seconds
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
            region_name=s3.region,
            config=Config(
                connect_timeout=5,
                read_timeout=30,
                # The worker runtime owns retries (with backoff, forever); one quick
                # retry here only smooths over a dropped keep-alive connection.
                retries={"max_attempts": 2, "mode": "standard"},
                s3={"addressing_style": "path"},
                # SigV4: presigned URLs then sign Content-Length and Content-Type too
                signature_version="s3v4",
                max_pool_connections=16,
            ),
        )

    def head(self, key: str) -> ObjectInfo | None:
        """None when the object does not exist (any more)."""
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        return ObjectInfo(
            key=key,
            size=resp["ContentLength"],
            etag=_strip_quotes(resp.get("ETag")),
            last_modified=resp.get("LastModified"),
            content_type=resp.get("ContentType"),
            metadata=resp.get("Metadata", {}),
        )

    def open(self, key: str, if_match: str | None = None) -> OpenedObject | None:
        """One GET: the object's size and ETag before any of its bytes are read, so a
        caller can skip or refuse it without downloading. None if missing, or if
        ``if_match`` is given and the object is no longer the one with that ETag."""
        extra: dict[str, Any] = {"IfMatch": f'"{if_match}"'} if if_match else {}
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as exc:
            if _is_missing(exc) or _is_changed(exc):
                return None
            raise
        info = ObjectInfo(
            key=key,
            size=resp["ContentLength"],
            etag=_strip_quotes(resp.get("ETag")),
            last_modified=resp.get("LastModified"),
            content_type=resp.get("ContentType"),
            metadata=resp.get("Metadata", {}),
        )
        return OpenedObject(info, resp["Body"])

    def read(self, key: str, max_bytes: int) -> bytes | None:
        """The object's bytes, never more than ``max_bytes``. None if missing."""
        opened = self.open(key)
        if opened is None:
            return None
        with opened:
            return opened.read(max_bytes)

    def download(self, key: str, path: Path, max_bytes: int) -> bool:
        """Stream the object into the file ``path`` (never more than ``max_bytes``), so a
        long recording need not be held in memory. False if missing."""
        opened = self.open(key)
        if opened is None:
            return False
        with opened, path.open("wb") as out:
            opened.copy_to(out, max_bytes)
        return True

    def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> None:
        extra: dict[str, Any] = {"Metadata": metadata} if metadata else {}
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **extra
        )

    def upload_file(
        self,
        key: str,
        fileobj: BinaryIO,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        transfer: TransferConfig | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """Stream a file object into the bucket (multipart past ``transfer``'s threshold,
        boto3's default without one); ``on_bytes`` is told of every chunk sent."""
        extra: dict[str, Any] = {"ContentType": content_type}
        if metadata:
            extra["Metadata"] = dict(metadata)
        self.client.upload_fileobj(
            fileobj, self.bucket, key, ExtraArgs=extra, Config=transfer, Callback=on_bytes
        )

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` (missing ones are no error), a thousand to a request."""
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            answer = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
            )
            failed = answer.get("Errors", [])
            if failed:
                raise RuntimeError(f"{len(failed)} of {len(chunk)} deletes failed: {failed[0]}")

    def copy(self, source: str, destination: str) -> None:
        """A server-side copy within the bucket (what ``aws s3 mv`` starts with)."""
        self.client.copy_object(
            Bucket=self.bucket, Key=destination, CopySource={"Bucket": self.bucket, "Key": source}
        )

    def check_bucket(self) -> None:
        """Raise unless the bucket answers (readiness and dependency checks)."""
        self.client.head_bucket(Bucket=self.bucket)

    def list(self, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order, from the first key after ``start_after``."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, StartAfter=start_after):
            for obj in page.get("Contents", []):
                yield ObjectInfo(
                    key=obj["Key"],
                    size=obj.get("Size", 0),
                    etag=_strip_quotes(obj.get("ETag")),
                    last_modified=obj.get("LastModified"),
                )

    def presigned_get(self, key: str) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self._presign_seconds,
        )

    def presigned_put(
        self,
        key: str,
        content_type: str,
        size_bytes: int,
        seconds: int,
        metadata: Mapping[str, str],
    ) -> str:
        """A PUT URL signed for exactly this type, size and metadata: a client cannot
        use it to store something else or something larger, nor leave the metadata out
        (send each as ``x-amz-meta-<name>``)."""
        return self.client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": size_bytes,
                "Metadata": dict(metadata),
            },
            ExpiresIn=seconds,
        )
