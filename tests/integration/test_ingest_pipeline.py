"""Ingest end to end on the embedded stack: S3 upload → notification → media row."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
from badfiles import bad_files, jpeg, wav_sine
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from harness import RunningStack, private_settings
from helpers import connect, read_topic, row_for, store_of, unique_png, wait_for_rows
from kafka import KafkaProducer
from minio import Minio
from PIL import Image

from glimpse.db.media import media_id
from glimpse.media import RejectReason

pytestmark = pytest.mark.integration


def test_uploaded_photo_becomes_an_accepted_row_with_a_thumbnail(stack: RunningStack) -> None:
    s = stack.settings
    store = store_of(s)
    photo = jpeg(1200, 800, orientation=6, taken="2024:07:14 18:30:05")
    store.put("trips/beach.jpg", photo, "image/jpeg")

    row = wait_for_rows(s, ["trips/beach.jpg"])["trips/beach.jpg"]

    assert row["status"] == "accepted"
    assert (row["kind"], row["mime"]) == ("image", "image/jpeg")
    assert (row["width"], row["height"]) == (800, 1200)  # EXIF orientation 6 applied
    assert row["captured_at"].year == 2024
    assert row["size_bytes"] == len(photo)
    thumb = store.read(row["thumbnail_key"], 10_000_000)
    assert thumb is not None
    with Image.open(io.BytesIO(thumb)) as image:
        assert max(image.size) == 512
        assert image.size[1] > image.size[0]  # portrait, like the photo as displayed
    announced = [json.loads(v) for v in read_topic(s, s.kafka.images_accepted_topic)]
    assert any(a["media_id"] == str(row["id"]) and a["version"] == 1 for a in announced)


def test_audio_upload_is_accepted_with_its_duration(stack: RunningStack) -> None:
    s = stack.settings
    store_of(s).put("voice/hello.wav", wav_sine(seconds=2.0), "audio/wav")

    row = wait_for_rows(s, ["voice/hello.wav"])["voice/hello.wav"]

    assert (row["status"], row["kind"]) == ("accepted", "audio")
    assert row["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert row["thumbnail_key"] is None


def test_same_content_under_another_key_is_a_duplicate_of_the_original(
    stack: RunningStack,
) -> None:
    s = stack.settings
    store = store_of(s)
    data = unique_png(4242)
    store.put("dupes/original.png", data, "image/png")
    wait_for_rows(s, ["dupes/original.png"])
    store.put("dupes/copy.png", data, "image/png")

    copy = wait_for_rows(s, ["dupes/copy.png"])["dupes/copy.png"]

    assert copy["status"] == "duplicate"
    assert copy["duplicate_of"] == media_id(s.s3.bucket, "dupes/original.png")


def test_deleting_an_object_marks_its_row_deleted(stack: RunningStack) -> None:
    s = stack.settings
    store = store_of(s)
    store.put("gone/soon.png", unique_png(777), "image/png")
    wait_for_rows(s, ["gone/soon.png"], until=lambda r: r["status"] == "accepted")

    store.delete("gone/soon.png")

    row = wait_for_rows(s, ["gone/soon.png"], until=lambda r: r["status"] == "deleted")
    assert row["gone/soon.png"]["deleted_at"] is not None


def test_every_bad_file_is_rejected_with_its_reason_and_ingest_keeps_running(
    stack: RunningStack,
) -> None:
    s = stack.settings
    store = store_of(s)
    # Files whose rejection depends on a lower limit than the stack's are left out;
    # the size limit is covered below with a file over the stack's real limit.
    corpus = [b for b in bad_files() if b.limits == type(b.limits)()]
    for bad in corpus:
        store.put(f"bad/{bad.name}", bad.data, "application/octet-stream")
    oversized = b"\xff\xd8\xff" + bytes(s.limits.max_bytes)
    store.put("bad/oversized.jpg", oversized, "image/jpeg")

    rows = wait_for_rows(s, [f"bad/{b.name}" for b in corpus] + ["bad/oversized.jpg"])

    for bad in corpus:
        row = rows[f"bad/{bad.name}"]
        assert (row["status"], row["reason"]) == ("rejected", bad.reason.value), bad.name
        assert bad.message_has in row["reason_detail"], (bad.name, row["reason_detail"])
    assert rows["bad/oversized.jpg"]["reason"] == RejectReason.TOO_LARGE.value
    # still healthy: a good file after the bad ones goes through
    store.put("bad/then-good.png", unique_png(31337), "image/png")
    assert wait_for_rows(s, ["bad/then-good.png"])["bad/then-good.png"]["status"] == "accepted"
    assert stack.stack.part("ingest").restarts == 0


def test_keys_with_unicode_spaces_and_dots_keep_their_exact_name(stack: RunningStack) -> None:
    s = stack.settings
    store = store_of(s)
    keys = ["été 2024/plage + amis ü.png", "odd/v1..v2/x..png", "<script>alert(1)</script>.png"]
    for i, key in enumerate(keys):
        store.put(key, unique_png(9000 + i), "image/png")

    rows = wait_for_rows(s, keys)

    assert {k: r["status"] for k, r in rows.items()} == dict.fromkeys(keys, "accepted")
    # a ".." path segment is refused by the S3 server itself: no object, no event
    with pytest.raises(ClientError):
        store.put("odd/a/../escape.png", unique_png(9100), "image/png")


def test_upload_with_the_minio_client_is_ingested_too(stack: RunningStack) -> None:
    s = stack.settings
    assert s.s3.endpoint
    client = Minio(
        s.s3.endpoint.removeprefix("http://"),
        access_key=s.s3.access_key,
        secret_key=s.s3.secret_key,
        secure=False,
    )
    data = unique_png(5150)
    client.put_object(s.s3.bucket, "minio/pic.png", io.BytesIO(data), len(data), "image/png")

    assert wait_for_rows(s, ["minio/pic.png"])["minio/pic.png"]["status"] == "accepted"


def test_malformed_event_goes_to_the_dlq_and_the_partition_keeps_moving(
    stack: RunningStack,
) -> None:
    s = stack.settings
    producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap)
    producer.send(s.kafka.objects_topic, key=b"junk", value=b'{"not": "an event"}')
    producer.flush()
    producer.close()
    store_of(s).put("after-junk.png", unique_png(6060), "image/png")

    assert wait_for_rows(s, ["after-junk.png"])["after-junk.png"]["status"] == "accepted"
    letters = [json.loads(v) for v in read_topic(s, s.kafka.dlq_topic)]
    junk = [x for x in letters if x["key"] == "junk"]
    assert junk and junk[0]["stage"] == "ingest"
    assert junk[0]["error_type"] == "MalformedEvent"
    assert row_for(s, "after-junk.png") is not None


def test_api_lists_rejected_files_with_their_reasons(stack: RunningStack) -> None:
    s = stack.settings
    store_of(s).put("api/empty.jpg", b"", "image/jpeg")
    wait_for_rows(s, ["api/empty.jpg"])
    api = f"http://{s.api.host}:{s.api.port}"

    page = httpx.get(f"{api}/v1/media", params={"status": "rejected", "prefix": "api/"}).json()
    one = httpx.get(f"{api}/v1/media/{page['items'][0]['id']}").json()

    assert [i["key"] for i in page["items"]] == ["api/empty.jpg"]
    assert one["reason"] == "empty"
    assert httpx.get(f"{api}/readyz").status_code == 200
    assert "glimpse_http_requests_total" in httpx.get(f"{api}/metrics").text


def test_multipart_upload_is_ingested_once_with_its_multipart_etag(stack: RunningStack) -> None:
    s = stack.settings
    store = store_of(s)
    photo = jpeg(2400, 1600)  # a few hundred KB: force parts with a tiny threshold
    config = TransferConfig(multipart_threshold=64 * 1024, multipart_chunksize=5 * 1024 * 1024)
    padded = photo + bytes(6 * 1024 * 1024)  # trailing data after EOI is allowed
    store.client.upload_fileobj(io.BytesIO(padded), s.s3.bucket, "big/parts.jpg", Config=config)

    row = wait_for_rows(s, ["big/parts.jpg"])["big/parts.jpg"]

    assert row["status"] == "accepted"
    assert row["etag"].endswith("-2")  # the multipart ETag, not a part's
    with connect(s) as conn:
        parts = conn.execute("SELECT count(*) AS n FROM media WHERE key LIKE '%%.uploads%%'")
        assert parts.fetchone()["n"] == 0  # part uploads never become media


def test_a_second_glimpse_pointed_at_external_endpoints_starts_no_servers(
    stack: RunningStack, tmp_path: Path
) -> None:
    """The production path: same code, every endpoint given from outside."""
    external = private_settings(tmp_path / "other-home")
    external.s3 = stack.settings.s3.model_copy()
    external.kafka = stack.settings.kafka.model_copy()
    external.database = stack.settings.database.model_copy()
    second = RunningStack(external)
    try:
        # the API and ingest first, the model workers once the API is ready
        assert [p.name for p in second.stack.parts] == [
            "search-api",
            "ingest",
            "caption",
            "embed",
            "transcribe",
            "transcribe-queries",
        ]
        for worker in ("ingest", "caption", "embed"):  # only the original workers work now
            second.stack.part(worker).process.stop()
        store_of(s := stack.settings).put("ext/one.png", unique_png(8080), "image/png")
        assert wait_for_rows(s, ["ext/one.png"])["ext/one.png"]["status"] == "accepted"
        api = f"http://127.0.0.1:{external.api.port}"
        assert (
            httpx.get(f"{api}/v1/media/{media_id(s.s3.bucket, 'ext/one.png')}").status_code == 200
        )
    finally:
        second.close()
