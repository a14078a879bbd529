"""Object events from an S3 store, whatever announced them: one type, ``ObjectEvent``.

``parse_object_events(key, value)`` turns one Kafka message into the object events it
stands for; ``s3_event_json(events)`` writes events as AWS S3 event JSON (what the
reconciler publishes), which ``parse_object_events`` reads back.

Formats read:

* SeaweedFS filer notifications (``[notification.kafka]``): value is a protobuf
  ``filer_pb.EventNotification``, key is a full filer path.
* AWS S3 / MinIO event JSON (``{"Records": [...]}``; MinIO adds a top-level
  ``EventName``/``Key`` wrapper and prefixes event names with ``s3:``).

What SeaweedFS 4.48 really sends (captured with scripts/capture_seaweed_event.py;
payloads under tests/fixtures/events/seaweedfs/):

* Message key: the full filer path of the *old* entry if there is one, else of the
  new entry, e.g. ``/buckets/media/voice notes/été 2024 + plage ü.m4a`` (raw UTF-8,
  not URL-encoded). The value carries no path of its own for the old entry and no
  event timestamp, so the key is required.
* ``new_parent_path`` is set whenever there is a new entry (creates and overwrites
  too), so a rename is "old path (key) != new_parent_path + '/' + new_entry.name".
* Create = new_entry only; overwrite = old_entry + new_entry at the same path;
  delete = old_entry only. Copy = one create. A filer move (``?mv.from=``) = one
  message with both entries and a different ``new_parent_path``.
* Directories get their own events: ``/buckets`` at first start, ``/buckets/<bucket>``
  on bucket creation, every implicit parent "folder" of a key on first use.
* Startup and bucket creation also write ``/buckets/.system/owners/...``, file
  entries under a non-bucket name, dropped by the "." bucket-name rule below.
* Keys with a ``..`` path segment are refused by the S3 gateway (InvalidRequest), so
  they never produce events; ``..`` inside a name is an ordinary key.
* Multipart upload: ``/buckets/<b>/.uploads/<id>`` directory and one file entry per
  part (created, later deleted), then a single create for the final object whose
  ``attributes.md5`` is empty; its ETag ``<md5>-<parts>`` is in extended.
* ETag: ``entry.extended["Seaweed-X-Amz-ETag"]``, unquoted hex (``ETag`` accepted
  too). ``attributes.mtime`` is whole seconds (``mtime_ns`` 0 for files).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from google.protobuf.message import DecodeError

from glimpse.events_pb import filer_pb2

#: Keys glimpse writes itself (thumbnails, voice-query clips, the store readiness
#: probe): never treated as uploads.
DERIVED_PREFIXES: tuple[str, ...] = ("thumbnails/", "queries/", ".glimpse/")

BUCKETS_ROOT = "/buckets/"
# SeaweedFS keeps in-progress multipart parts here, inside the bucket.
MULTIPART_DIR = ".uploads/"
ETAG_KEYS = ("Seaweed-X-Amz-ETag", "ETag")
RECONCILE_EVENT_SOURCE = "glimpse:reconcile"
BACKFILL_EVENT_SOURCE = "glimpse:backfill"
# glimpse's own event sources (what ObjectEvent.source says) as the JSON records spell them
_OWN_SOURCES = {"reconcile": RECONCILE_EVENT_SOURCE, "backfill": BACKFILL_EVENT_SOURCE}
AWS_EVENT_SOURCE = "aws:s3"


class MalformedEvent(ValueError):
    """A message that is no object event at all; callers dead-letter it."""


class ObjectAction(StrEnum):
    CREATED = "created"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    action: ObjectAction
    bucket: str
    key: str  # as S3 clients see it: decoded, no leading slash
    size: int | None
    etag: str | None  # without surrounding quotes
    event_time: datetime | None  # tz-aware UTC
    source: str  # "seaweedfs" | "s3" (AWS/MinIO JSON) | "reconcile" | "backfill"


def parse_object_events(
    key: bytes | None,
    value: bytes,
    *,
    ignored_prefixes: tuple[str, ...] = DERIVED_PREFIXES,
) -> list[ObjectEvent]:
    """The object events one Kafka message stands for; ``[]`` for what is no object change.

    >>> parse_object_events(None, b'{"Records": []}')
    []
    """
    if not value:
        raise MalformedEvent("empty message")
    try:
        document = _json_document(value)
        if document is not None:
            events = _events_from_json(document)
        else:
            events = _events_from_seaweed(key, value)
    except MalformedEvent:
        raise
    except Exception as exc:
        # Parsing touches nothing outside ``value``, so any other error is the input's
        # fault too (RecursionError on deeply nested JSON, a record of the wrong shape),
        # and callers — record_failure among them — must be able to rely on one type.
        raise MalformedEvent(f"unreadable event ({type(exc).__name__}: {exc})") from None
    return [e for e in events if _wanted(e.key, ignored_prefixes)]


def s3_event_json(events: Sequence[ObjectEvent]) -> bytes:
    """``events`` as AWS S3 event JSON, readable by ``parse_object_events``."""
    return json.dumps({"Records": [_record(e) for e in events]}, ensure_ascii=False).encode()


# --- AWS S3 / MinIO JSON ---------------------------------------------------------------


def _json_document(value: bytes) -> dict[str, Any] | None:
    """The JSON object in ``value``; None when it is not JSON (then it may be protobuf)."""
    # An EventNotification starts with a field tag (0x0a or 0x12), never "{" or "[",
    # but tag + length byte can read as whitespace + "{" ("\n{"): so when the first
    # byte is whitespace, only a successful parse decides.
    if value.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        if value[:1] in (b"{", b"["):
            raise MalformedEvent("message starts like JSON but is not valid JSON") from None
        return None
    if not isinstance(document, dict):
        raise MalformedEvent("JSON event is not an object")
    return document


def _events_from_json(document: Mapping[str, Any]) -> list[ObjectEvent]:
    # Sent once when a notification configuration is saved; no object changed.
    if document.get("Event") == "s3:TestEvent":
        return []
    records = document.get("Records")
    if not isinstance(records, list):
        raise MalformedEvent("JSON event without a Records list")
    events = []
    for record in records:
        event = _event_from_record(record)
        if event is not None:
            events.append(event)
    return events


def _event_from_record(record: object) -> ObjectEvent | None:
    if not isinstance(record, dict):
        raise MalformedEvent("S3 event record is not an object")
    # AWS writes "ObjectCreated:Put", MinIO "s3:ObjectCreated:Put".
    name = str(record.get("eventName", "")).removeprefix("s3:")
    if name.startswith("ObjectCreated:"):
        action = ObjectAction.CREATED
    elif name.startswith("ObjectRemoved:"):
        action = ObjectAction.DELETED
    else:
        return None  # accessed, restored, tagged, replicated...: no content change
    try:
        bucket = record["s3"]["bucket"]["name"]
        obj = record["s3"]["object"]
        raw_key = obj["key"]
    except (KeyError, TypeError):
        raise MalformedEvent(f"{name} record without s3.bucket.name / s3.object.key") from None
    if not isinstance(bucket, str) or not isinstance(raw_key, str) or not bucket or not raw_key:
        raise MalformedEvent(f"{name} record with an empty bucket or key")
    size = obj.get("size")
    etag = obj.get("eTag")
    source = record.get("eventSource")
    return ObjectEvent(
        action=action,
        bucket=bucket,
        # S3 URL-encodes the key form-style: "red flower.jpg" arrives as "red+flower.jpg".
        key=unquote_plus(raw_key),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        etag=_clean_etag(etag) if isinstance(etag, str) else None,
        event_time=_parse_time(record.get("eventTime")),
        source=next((name for name, spelt in _OWN_SOURCES.items() if spelt == source), "s3"),
    )


def _parse_time(value: object) -> datetime | None:
    # A bad timestamp does not make the object change less real: keep the event.
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _record(event: ObjectEvent) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": quote_plus(event.key, safe="/")}
    if event.size is not None:
        obj["size"] = event.size
    if event.etag is not None:
        obj["eTag"] = event.etag
    created = event.action is ObjectAction.CREATED
    record: dict[str, Any] = {
        "eventVersion": "2.1",
        "eventSource": _OWN_SOURCES.get(event.source, AWS_EVENT_SOURCE),
        "eventName": "ObjectCreated:Put" if created else "ObjectRemoved:Delete",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": event.bucket, "arn": f"arn:aws:s3:::{event.bucket}"},
            "object": obj,
        },
    }
    if event.event_time is not None:
        # Microseconds, not AWS's milliseconds, so the time reads back unchanged.
        record["eventTime"] = event.event_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return record


# --- SeaweedFS protobuf ----------------------------------------------------------------


def _events_from_seaweed(key: bytes | None, value: bytes) -> list[ObjectEvent]:
    try:
        note = filer_pb2.EventNotification.FromString(value)
    except DecodeError as exc:
        raise MalformedEvent(f"neither JSON nor a SeaweedFS EventNotification: {exc}") from None
    has_old, has_new = note.HasField("old_entry"), note.HasField("new_entry")
    # Arbitrary bytes often parse as a message of unknown fields; a real one has an entry.
    if not (has_old or has_new):
        raise MalformedEvent("SeaweedFS EventNotification with neither old nor new entry")
    if not key:
        raise MalformedEvent("SeaweedFS event without a message key (the entry's path)")
    try:
        path = key.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvent("SeaweedFS message key is not UTF-8") from None

    new_path = f"{note.new_parent_path.rstrip('/')}/{note.new_entry.name}" if has_new else None
    events = []
    if has_old and path != new_path:
        # Deleted, or renamed away from ``path``. The old entry's mtime is when it was
        # last written, not when it went away, and the payload has no event time.
        old = _seaweed_event(ObjectAction.DELETED, path, note.old_entry, with_time=False)
        events.append(old)
    if new_path is not None:
        events.append(_seaweed_event(ObjectAction.CREATED, new_path, note.new_entry))
    return [e for e in events if e is not None]


def _seaweed_event(
    action: ObjectAction, path: str, entry: filer_pb2.Entry, *, with_time: bool = True
) -> ObjectEvent | None:
    if entry.is_directory or not path.startswith(BUCKETS_ROOT):
        return None
    bucket, _, key = path.removeprefix(BUCKETS_ROOT).partition("/")
    # Bucket names never start with "." (S3 naming rules); /buckets/.system is SeaweedFS's.
    if not bucket or bucket.startswith(".") or not key or key.startswith(MULTIPART_DIR):
        return None
    attributes = entry.attributes if entry.HasField("attributes") else None
    return ObjectEvent(
        action=action,
        bucket=bucket,
        key=key,
        size=_seaweed_size(entry),
        etag=_seaweed_etag(entry),
        event_time=_seaweed_time(attributes) if with_time and attributes else None,
        source="seaweedfs",
    )


def _seaweed_size(entry: filer_pb2.Entry) -> int | None:
    if not entry.HasField("attributes") and not entry.chunks and not entry.content:
        return None
    # As SeaweedFS's own filer.FileSize: the largest of the recorded size, the extent
    # of the chunks and inline content (older writers left file_size 0 on chunked files).
    extent = max((c.offset + c.size for c in entry.chunks), default=0)
    return max(entry.attributes.file_size, extent, len(entry.content))


def _seaweed_etag(entry: filer_pb2.Entry) -> str | None:
    for name in ETAG_KEYS:
        raw = entry.extended.get(name)
        if raw:
            return _clean_etag(raw.decode("utf-8", "replace"))
    md5 = entry.attributes.md5
    return md5.hex() if md5 else None


def _seaweed_time(attributes: filer_pb2.FuseAttributes) -> datetime | None:
    if attributes.mtime <= 0:
        return None
    try:
        when = datetime.fromtimestamp(attributes.mtime, UTC)
    except (OverflowError, OSError, ValueError):
        return None  # a nonsense mtime is no reason to drop the event
    if 0 <= attributes.mtime_ns < 1_000_000_000:
        when = when.replace(microsecond=attributes.mtime_ns // 1000)
    return when


# --- shared ----------------------------------------------------------------------------


def _clean_etag(etag: str) -> str | None:
    return etag.strip().strip('"') or None


def _wanted(key: str, ignored_prefixes: tuple[str, ...]) -> bool:
    # A key ending in "/" is a folder marker, not content.
    return not key.endswith("/") and not key.startswith(ignored_prefixes)
