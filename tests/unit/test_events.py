"""parse_object_events on real payloads: SeaweedFS captures and documented AWS/MinIO JSON.

The SeaweedFS messages were captured from weed mini + tansu by
scripts/capture_seaweed_event.py; tests/fixtures/events/seaweedfs/index.json says
which S3 operation produced each one. The JSON files are AWS's and MinIO's own
documented examples (sources in tests/fixtures/events/index.json).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from glimpse.events import (
    DERIVED_PREFIXES,
    MalformedEvent,
    ObjectAction,
    ObjectEvent,
    parse_object_events,
    s3_event_json,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"
SEAWEED = FIXTURES / "seaweedfs"
CREATED, DELETED = ObjectAction.CREATED, ObjectAction.DELETED

# What the capture script wrote, so expected ETags are plain MD5s of known bytes.
CAT_V1, CAT_V2 = b"hello world", b"hello again world"
PART_1, PART_2 = b"a" * (5 * 1024 * 1024), b"b" * (1024 * 1024)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# S3's multipart ETag: MD5 of the parts' binary MD5s, then "-<number of parts>".
MULTIPART_ETAG = md5(hashlib.md5(PART_1).digest() + hashlib.md5(PART_2).digest()) + "-2"


def seaweed_index() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads((SEAWEED / "index.json").read_text())["messages"]
    return messages


def seaweed_message(operation: str, path: str) -> tuple[bytes, bytes]:
    """(Kafka key, value) of the one captured message of ``operation`` for ``path``."""
    found = [m for m in seaweed_index() if m["operation"] == operation and m["key"] == path]
    assert len(found) == 1, f"expected one {operation} message for {path}, found {len(found)}"
    stem = SEAWEED / found[0]["file"]
    return stem.with_suffix(".key").read_bytes(), stem.with_suffix(".bin").read_bytes()


def seaweed_mtime(operation: str, path: str) -> datetime:
    """The new entry's mtime as recorded in the index (whole seconds, UTC)."""
    [message] = [m for m in seaweed_index() if m["operation"] == operation and m["key"] == path]
    return datetime.fromtimestamp(int(message["decoded"]["new_entry"]["attributes"]["mtime"]), UTC)


def fixture_json(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- SeaweedFS -------------------------------------------------------------------------


def test_seaweed_put_is_one_created_event() -> None:
    key, value = seaweed_message("put", "/buckets/media/photos/cat.jpg")

    assert key == b"/buckets/media/photos/cat.jpg"  # the Kafka key is the full filer path
    assert parse_object_events(key, value) == [
        ObjectEvent(
            action=CREATED,
            bucket="media",
            key="photos/cat.jpg",
            size=len(CAT_V1),
            etag=md5(CAT_V1),
            event_time=seaweed_mtime("put", "/buckets/media/photos/cat.jpg"),
            source="seaweedfs",
        )
    ]


def test_seaweed_overwrite_is_one_created_event_for_the_new_content() -> None:
    key, value = seaweed_message("overwrite", "/buckets/media/photos/cat.jpg")

    [event] = parse_object_events(key, value)

    assert (event.action, event.key, event.size, event.etag) == (
        CREATED,
        "photos/cat.jpg",
        len(CAT_V2),
        md5(CAT_V2),
    )
    assert event.event_time == seaweed_mtime("overwrite", "/buckets/media/photos/cat.jpg")


def test_seaweed_delete_is_one_deleted_event_without_time() -> None:
    key, value = seaweed_message("delete", "/buckets/media/photos/cat.jpg")

    # The payload has no deletion time; the old entry's mtime is its last write.
    assert parse_object_events(key, value) == [
        ObjectEvent(DELETED, "media", "photos/cat.jpg", len(CAT_V2), md5(CAT_V2), None, "seaweedfs")
    ]


def test_seaweed_key_with_unicode_spaces_and_plus_is_kept_verbatim() -> None:
    path = "/buckets/media/voice notes/été 2024 + plage ü.m4a"
    key, value = seaweed_message("put-unicode", path)

    assert key == path.encode()  # raw UTF-8, not URL-encoded
    [event] = parse_object_events(key, value)
    assert (event.key, event.size, event.etag) == (
        "voice notes/été 2024 + plage ü.m4a",
        5,
        md5(b"audio"),
    )


def test_seaweed_key_with_dots_inside_names() -> None:
    key, value = seaweed_message("put-dotdot", "/buckets/media/odd/v1..v2/c+d..txt")

    [event] = parse_object_events(key, value)

    assert (event.action, event.key, event.size) == (CREATED, "odd/v1..v2/c+d..txt", 3)


def test_seaweed_multipart_upload_is_one_created_event_with_multipart_etag() -> None:
    multipart = [m for m in seaweed_index() if m["operation"] == "multipart"]
    events = [
        event
        for m in multipart
        for event in parse_object_events(
            (SEAWEED / f"{m['file']}.key").read_bytes(), (SEAWEED / f"{m['file']}.bin").read_bytes()
        )
    ]

    # Nine messages (the .uploads directories, each part created then deleted, the
    # "videos" folder, the object): one object event.
    assert len(multipart) == 9
    assert [(e.action, e.key, e.size, e.etag) for e in events] == [
        (CREATED, "videos/big clip.mp4", len(PART_1) + len(PART_2), MULTIPART_ETAG)
    ]


def test_seaweed_copy_is_a_created_event() -> None:
    key, value = seaweed_message("copy", "/buckets/media/photos/cat copy.jpg")

    [event] = parse_object_events(key, value)

    assert (event.action, event.key, event.size, event.etag) == (
        CREATED,
        "photos/cat copy.jpg",
        len(CAT_V2),
        md5(CAT_V2),
    )


def test_seaweed_move_is_deleted_old_path_then_created_new_path() -> None:
    # The key is the old path; the new one is new_parent_path + new_entry.name.
    key, value = seaweed_message("rename", "/buckets/media/photos/cat copy.jpg")

    events = parse_object_events(key, value)

    assert [(e.action, e.key, e.size, e.etag) for e in events] == [
        (DELETED, "photos/cat copy.jpg", len(CAT_V2), md5(CAT_V2)),
        (CREATED, "archive/cat.jpg", len(CAT_V2), md5(CAT_V2)),
    ]


def test_seaweed_derived_objects_are_ignored_unless_asked_for() -> None:
    key, value = seaweed_message("put-derived", "/buckets/media/thumbnails/photos/cat.jpg.webp")

    assert "thumbnails/" in DERIVED_PREFIXES
    assert parse_object_events(key, value) == []
    [event] = parse_object_events(key, value, ignored_prefixes=())
    assert (event.action, event.key, event.size) == (CREATED, "thumbnails/photos/cat.jpg.webp", 4)


@pytest.mark.parametrize(
    ("operation", "path"),
    [
        ("startup", "/buckets"),  # directory
        ("startup", "/buckets/.system/owners/.complete"),  # SeaweedFS bookkeeping file
        ("create-bucket", "/buckets/media"),  # the bucket itself
        ("put", "/buckets/media/photos"),  # implicit parent folder
    ],
)
def test_seaweed_non_object_entries_are_ignored(operation: str, path: str) -> None:
    key, value = seaweed_message(operation, path)

    assert parse_object_events(key, value) == []


def test_whole_seaweed_capture_gives_exactly_the_object_changes() -> None:
    events = []
    for m in seaweed_index():
        stem = SEAWEED / m["file"]
        key, value = stem.with_suffix(".key").read_bytes(), stem.with_suffix(".bin").read_bytes()
        events.extend(parse_object_events(key, value))

    # 31 messages in all; bucket "media", source "seaweedfs" throughout.
    assert {(e.bucket, e.source) for e in events} == {("media", "seaweedfs")}
    assert [(e.action, e.key) for e in events] == [
        (CREATED, "photos/cat.jpg"),
        (CREATED, "photos/cat.jpg"),
        (CREATED, "voice notes/été 2024 + plage ü.m4a"),
        (CREATED, "videos/big clip.mp4"),
        (CREATED, "photos/cat copy.jpg"),
        (CREATED, "odd/v1..v2/c+d..txt"),
        (DELETED, "photos/cat.jpg"),
        (DELETED, "photos/cat copy.jpg"),
        (CREATED, "archive/cat.jpg"),
    ]
    assert all(e.event_time is None or e.event_time.tzinfo is UTC for e in events)


def test_seaweed_event_needs_its_message_key() -> None:
    _, value = seaweed_message("delete", "/buckets/media/photos/cat.jpg")

    with pytest.raises(MalformedEvent, match="message key"):
        parse_object_events(None, value)


def test_seaweed_truncated_payload_is_malformed() -> None:
    key, value = seaweed_message("put", "/buckets/media/photos/cat.jpg")

    with pytest.raises(MalformedEvent, match="neither JSON nor a SeaweedFS"):
        parse_object_events(key, value[:-5])


# --- AWS S3 / MinIO JSON ---------------------------------------------------------------


def test_aws_put_example() -> None:
    assert parse_object_events(None, fixture_json("aws_put.json")) == [
        ObjectEvent(
            action=CREATED,
            bucket="mybucket",
            key="HappyFace.jpg",
            size=1024,
            etag="d41d8cd98f00b204e9800998ecf8427e",
            event_time=datetime(1970, 1, 1, tzinfo=UTC),
            source="s3",
        )
    ]


def test_aws_delete_example_has_no_size_or_etag() -> None:
    assert parse_object_events(None, fixture_json("aws_delete.json")) == [
        ObjectEvent(
            DELETED,
            "example-bucket",
            "test/key",
            None,
            None,
            datetime(1970, 1, 1, tzinfo=UTC),
            "s3",
        )
    ]


def test_minio_kafka_example_with_its_wrapper() -> None:
    # MinIO's Kafka message: {"EventName": "s3:ObjectCreated:Put", "Key": "images/myphoto.jpg",
    # "Records": [...]}, event names prefixed with "s3:".
    assert parse_object_events(b"images/myphoto.jpg", fixture_json("minio_put.json")) == [
        ObjectEvent(
            action=CREATED,
            bucket="images",
            key="myphoto.jpg",
            size=6474,
            etag="430f89010c77aa34fc8760696da62d08-1",
            event_time=datetime(2019, 9, 10, 17, 41, 54, tzinfo=UTC),
            source="s3",
        )
    ]


def test_aws_test_event_is_ignored() -> None:
    assert parse_object_events(None, fixture_json("aws_test_event.json")) == []


def test_aws_key_is_url_decoded() -> None:
    # AWS docs: 'The object key name value is URL encoded. For example, "red flower.jpg"
    # becomes "red+flower.jpg"'; a literal '+' arrives as %2B.
    document = json.loads(fixture_json("aws_put.json"))
    document["Records"][0]["s3"]["object"]["key"] = "voice+notes/%C3%A9t%C3%A9+a%2Bb/x..y.m4a"

    [event] = parse_object_events(None, json.dumps(document).encode())

    assert event.key == "voice notes/été a+b/x..y.m4a"


def test_json_events_other_than_created_or_removed_are_ignored() -> None:
    document = json.loads(fixture_json("minio_put.json"))
    document["Records"][0]["eventName"] = "s3:ObjectAccessed:Get"

    assert parse_object_events(None, json.dumps(document).encode()) == []


def test_json_derived_objects_are_ignored() -> None:
    document = json.loads(fixture_json("aws_put.json"))
    document["Records"][0]["s3"]["object"]["key"] = "queries/abc.json"

    assert parse_object_events(None, json.dumps(document).encode()) == []


# --- malformed input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b'{"Service": "Amazon S3"}', "without a Records list"),
        (b'{"Records": "none"}', "without a Records list"),
        (b'{"Records": [{"eventName": "ObjectCreated:Put"}]}', "s3.bucket.name"),
        (b"[1, 2]", "not an object"),
        (b"plain text, neither JSON nor protobuf", "neither JSON nor a SeaweedFS"),
        # json.loads recurses: deep nesting is a RecursionError, not a JSONDecodeError
        (b"[" * 200_000, "unreadable event .RecursionError"),
        (b'{"Records": [' * 100_000, "unreadable event .RecursionError"),
    ],
)
def test_malformed_input_raises(value: bytes, message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        parse_object_events(b"/buckets/media/x.jpg", value)


def test_malformed_event_is_a_value_error() -> None:
    assert issubclass(MalformedEvent, ValueError)


# --- s3_event_json ---------------------------------------------------------------------

ODD_KEY = "voice notes/été 2024 + plage/../a..b/c+d %20 ü.m4a"


def test_s3_event_json_round_trips() -> None:
    when = datetime(2024, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)
    events = [
        ObjectEvent(
            CREATED, "media", ODD_KEY, 1234, "0cc175b9c0f1b6a831c399e269772661", when, "reconcile"
        ),
        ObjectEvent(DELETED, "media", "photos/cat.jpg", None, None, None, "reconcile"),
        ObjectEvent(CREATED, "media", "videos/big clip.mp4", 6291456, MULTIPART_ETAG, when, "s3"),
    ]

    assert parse_object_events(None, s3_event_json(events)) == events


def test_s3_event_json_looks_like_aws() -> None:
    event = ObjectEvent(CREATED, "media", ODD_KEY, 5, "abc", datetime(2024, 1, 2, tzinfo=UTC), "s3")

    [record] = json.loads(s3_event_json([event]))["Records"]

    assert record["eventSource"] == "aws:s3"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["eventTime"] == "2024-01-02T00:00:00.000000Z"
    assert record["s3"]["bucket"]["name"] == "media"
    assert record["s3"]["object"] == {
        "key": "voice+notes/%C3%A9t%C3%A9+2024+%2B+plage/../a..b/c%2Bd+%2520+%C3%BC.m4a",
        "size": 5,
        "eTag": "abc",
    }


def test_s3_event_json_marks_reconcile_events() -> None:
    event = ObjectEvent(DELETED, "media", "a.jpg", None, None, None, "reconcile")

    [record] = json.loads(s3_event_json([event]))["Records"]

    assert (record["eventSource"], record["eventName"]) == (
        "glimpse:reconcile",
        "ObjectRemoved:Delete",
    )
    assert "eTag" not in record["s3"]["object"]


def test_seaweed_events_re_encoded_read_back_as_s3() -> None:
    key, value = seaweed_message("put-unicode", "/buckets/media/voice notes/été 2024 + plage ü.m4a")
    events = parse_object_events(key, value)

    [back] = parse_object_events(None, s3_event_json(events))

    # Everything survives but the source: AWS JSON reads back as "s3".
    assert back == dataclasses.replace(events[0], source="s3")
