"""Caption tells "the upload is gone" (nothing to do) from "the upload is there but
its thumbnail is missing" (a failure with a reason people can see)."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
import pytest
from doubles import MemoryStore, accepted, message
from models_fixtures import build_tiny_clip
from PIL import Image
from psycopg_pool import ConnectionPool

from glimpse.config import DatabaseSettings, KafkaSettings
from glimpse.db import label_sets, media, stage_models, vectors
from glimpse.db.label_sets import Version
from glimpse.db.pool import open_pool
from glimpse.errors import ItemError, TransientError, failure_reason
from glimpse.labels import artifact
from glimpse.labels.artifact import Artifact
from glimpse.labels.head import LabelHead
from glimpse.messages import MediaAccepted
from glimpse.models.captioning import Captioner, ImageAnalysis
from glimpse.models.joint import JointModel
from glimpse.runtime import DeadLetter, Done, Failed, Outcome
from services.caption.handler import CaptionHandler


class CatCaptioner(Captioner):
    """Sees a cat in every image."""

    def _load(self) -> str:
        return "r1"

    def _predict_batch(self, images: Sequence[Image.Image]) -> list[ImageAnalysis]:
        return [ImageAnalysis("A photo of a cat.", [("cat", 0.9)], None) for _ in images]


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "orange").save(out, "JPEG")
    return out.getvalue()


def stored_image(
    pool: ConnectionPool[psycopg.Connection[Any]], store: MemoryStore, name: str
) -> MediaAccepted:
    """An accepted image's row, and its upload and thumbnail in the store."""
    with pool.connection() as conn:
        item = accepted(conn, "image", thumbnail_key=f"thumbnails/{name}.jpg")
    store.objects[item.key] = store.objects[f"thumbnails/{name}.jpg"] = jpeg()
    return item


@pytest.fixture
def pool(postgres: str) -> Iterator[ConnectionPool[psycopg.Connection[Any]]]:
    with open_pool(DatabaseSettings(url=postgres), "caption-test") as pool:
        yield pool


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def handler(
    pool: ConnectionPool[psycopg.Connection[Any]], store: MemoryStore
) -> Iterator[CaptionHandler]:
    caption = CaptionHandler(
        store.as_store(), pool, CatCaptioner("test/cat"), KafkaSettings(), missing_grace_s=1.0
    )
    yield caption
    caption.fetchers.shutdown()


TOPIC = KafkaSettings().images_accepted_topic


def test_an_image_with_its_thumbnail_is_captioned(
    handler: CaptionHandler, pool: ConnectionPool[psycopg.Connection[Any]], store: MemoryStore
) -> None:
    item = stored_image(pool, store, "ok")

    [result] = handler.handle([message(TOPIC, item)])

    assert isinstance(result, Done) and result.outcome is Outcome.OK


def test_a_missing_thumbnail_of_a_live_upload_is_a_failure_with_a_reason(
    handler: CaptionHandler, pool: ConnectionPool[psycopg.Connection[Any]], store: MemoryStore
) -> None:
    with pool.connection() as conn:
        item = accepted(conn, "image", thumbnail_key="thumbnails/lost.jpg")
    store.objects[item.key] = jpeg()  # the upload is there, its thumbnail is not
    incoming = message(TOPIC, item)

    [result] = handler.handle([incoming])

    assert isinstance(result, Failed) and not result.permanent  # retried first
    assert isinstance(result.error, ItemError)
    assert failure_reason(result.error) == "thumbnail_missing"
    # once dead-lettered, the reason is recorded where people look
    handler.record_failure(incoming, DeadLetter.of("caption", incoming, result.error, 3))
    with pool.connection() as conn:
        failure = conn.execute(
            "SELECT reason, message FROM media_failures WHERE media_id = %(id)s",
            {"id": item.media_id},
        ).fetchone()
    assert failure == {
        "reason": "thumbnail_missing",
        "message": "thumbnail thumbnails/lost.jpg is missing",
    }


def test_a_thumbnail_gone_with_its_deleted_upload_is_skipped(
    handler: CaptionHandler, pool: ConnectionPool[psycopg.Connection[Any]]
) -> None:
    with pool.connection() as conn:
        item = accepted(conn, "image", thumbnail_key="thumbnails/gone.jpg")
        media.mark_deleted(conn, item.bucket, item.key)

    [result] = handler.handle([message(TOPIC, item)])

    assert isinstance(result, Done) and result.outcome is Outcome.SKIPPED


def test_a_thumbnail_whose_upload_was_deleted_a_moment_ago_is_skipped(
    handler: CaptionHandler, pool: ConnectionPool[psycopg.Connection[Any]]
) -> None:
    # The object and its thumbnail are gone; ingest has not processed the delete yet.
    with pool.connection() as conn:
        item = accepted(conn, "image", thumbnail_key="thumbnails/going.jpg")

    [result] = handler.handle([message(TOPIC, item)])

    assert isinstance(result, Done) and result.outcome is Outcome.SKIPPED


def test_a_lost_thumbnail_is_made_again_from_the_upload(
    handler: CaptionHandler, pool: ConnectionPool[psycopg.Connection[Any]], store: MemoryStore
) -> None:
    # e.g. removed by the delete of another copy of the same content (aws s3 mv)
    upload = jpeg()
    with pool.connection() as conn:
        item = accepted(conn, "image", thumbnail_key="thumbnails/shared.jpg",
                        sha256=hashlib.sha256(upload).hexdigest())  # fmt: skip
    store.objects[item.key] = upload

    [result] = handler.handle([message(TOPIC, item)])

    assert isinstance(result, Done) and result.outcome is Outcome.OK
    with Image.open(io.BytesIO(store.objects["thumbnails/shared.jpg"])) as thumbnail:
        assert thumbnail.format == "JPEG"


def test_an_upload_unreadable_while_the_store_restarts_is_retried_not_skipped(
    handler: CaptionHandler, pool: ConnectionPool[psycopg.Connection[Any]], store: MemoryStore
) -> None:
    with pool.connection() as conn:
        item = accepted(conn, "image", thumbnail_key="thumbnails/back.jpg")

    def store_comes_back() -> None:
        store.objects[item.key] = store.objects["thumbnails/back.jpg"] = jpeg()

    threading.Timer(0.3, store_comes_back).start()
    with pytest.raises(TransientError):  # the runtime retries the batch, and it is read
        handler.handle([message(TOPIC, item)])

    [result] = handler.handle([message(TOPIC, item)])
    assert isinstance(result, Done) and result.outcome is Outcome.OK


def encoded(image: Image.Image, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@pytest.fixture
def reading_handler(
    pool: ConnectionPool[psycopg.Connection[Any]], store: MemoryStore
) -> Iterator[CaptionHandler]:
    from glimpse.config import CueSettings
    from glimpse.models.cues import CueReader

    caption = CaptionHandler(
        store.as_store(), pool, CatCaptioner("test/cat"), KafkaSettings(),
        cues=CueReader(CueSettings(ocr_timeout_ms=120_000)), missing_grace_s=1.0,
    )  # fmt: skip
    yield caption
    caption.fetchers.shutdown()


def test_words_and_colours_are_stored_and_reach_the_text_vector(
    reading_handler: CaptionHandler,
    pool: ConnectionPool[psycopg.Connection[Any]],
    store: MemoryStore,
) -> None:
    from bench.common.text_images import screenshot, thumbnail
    from glimpse.messages import TextReady

    with pool.connection() as conn:
        item = accepted(conn, "image", thumbnail_key="thumbnails/mail.jpg")
    # text far too small in the thumbnail: read from the upload
    store.objects[item.key] = encoded(screenshot(), "PNG")
    store.objects["thumbnails/mail.jpg"] = encoded(thumbnail(screenshot()))

    [result] = reading_handler.handle([message(TOPIC, item)])

    assert isinstance(result, Done) and result.outcome is Outcome.OK
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT ocr_text, colours, cues_version FROM captions WHERE media_id = %(id)s",
            {"id": item.media_id},
        ).fetchone()
    assert row is not None
    assert "Meeting moved to Thursday afternoon" in row["ocr_text"]
    assert row["colours"][0][0] == "white"
    assert row["cues_version"] == reading_handler.cues_version
    [out] = result.outputs
    text = TextReady.model_validate_json(out.value).text
    assert text.startswith('A photo of a cat. It reads: "Invoice for October')
    assert text.endswith("Colours: white.")

    # a replay reads nothing again and announces the same text
    [again] = reading_handler.handle([message(TOPIC, item)])
    assert isinstance(again, Done) and again.outcome is Outcome.SKIPPED
    assert TextReady.model_validate_json(again.outputs[0].value).text == text


def test_a_caption_stored_without_cues_is_made_again_with_them(
    handler: CaptionHandler,
    reading_handler: CaptionHandler,
    pool: ConnectionPool[psycopg.Connection[Any]],
    store: MemoryStore,
) -> None:
    item = stored_image(pool, store, "plain")
    handler.handle([message(TOPIC, item)])

    [result] = reading_handler.handle([message(TOPIC, item)])

    assert isinstance(result, Done) and result.outcome is Outcome.OK
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT colours FROM captions WHERE media_id = %(id)s", {"id": item.media_id}
        ).fetchone()
    assert row is not None and row["colours"] == [["orange", 1.0]]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> JointModel:
    return JointModel(
        str(build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")),
        device="cpu",
        cache_dir=None,
    )


def test_a_joint_model_adds_an_image_vector_even_to_images_captioned_before_it(
    handler: CaptionHandler,
    tiny_clip: JointModel,
    pool: ConnectionPool[psycopg.Connection[Any]],
    store: MemoryStore,
) -> None:
    item = stored_image(pool, store, "joint")
    handler.handle([message(TOPIC, item)])  # captioned while no joint model ran
    with_joint = CaptionHandler(
        store.as_store(), pool, CatCaptioner("test/cat"), KafkaSettings(), joint=tiny_clip,
        joint_spec={"joint_model": "tiny-clip"},
    )  # fmt: skip
    try:
        [result] = with_joint.handle([message(TOPIC, item)])
        [again] = with_joint.handle([message(TOPIC, item)])
    finally:
        with_joint.fetchers.shutdown()

    assert isinstance(result, Done) and result.outcome is Outcome.OK
    assert isinstance(again, Done) and again.outcome is Outcome.SKIPPED
    joint = vectors.VectorModel("joint/tiny-clip", "joint", 16)
    with pool.connection() as conn:
        stored = vectors.vector_of(conn, item.media_id, joint)
        active = stage_models.active(conn, "joint")
        index = vectors.index_state(conn, vectors.index_name(joint.model, "joint"))
    expected = tiny_clip.embed_images([Image.open(io.BytesIO(jpeg())).convert("RGB")])[0]
    assert stored is not None
    np.testing.assert_allclose(stored, expected, atol=2e-3)  # stored as halfvec
    assert active is not None and active.model == "joint/tiny-clip"
    assert index == "valid"


class VisualCaptioner(Captioner):
    """Sees a cat and makes the same visual vector for every image."""

    visual_dim = 4

    def _load(self) -> str:
        return "r1"

    def _predict_batch(self, images: Sequence[Image.Image]) -> list[ImageAnalysis]:
        vector = np.array([1.0, 0, 0, 0], dtype=np.float32)
        return [ImageAnalysis("A photo of a cat.", [("cat", 0.9)], vector) for _ in images]


def test_an_active_label_set_tags_a_new_image_from_the_vector_in_hand(
    pool: ConnectionPool[psycopg.Connection[Any]], store: MemoryStore
) -> None:
    name = f"pets-{uuid.uuid4().hex[:6]}"
    captioner = VisualCaptioner(f"test/visual-{name}")
    head = LabelHead(("cat", "dog"), np.array([[6.0, 0, 0, 0], [0, 6.0, 0, 0]]), np.zeros(2),
                     captioner.model_id)  # fmt: skip
    with pool.connection() as conn:
        number = label_sets.next_version(conn, name, unsure_below=0.5)
        key, sha = artifact.save(store.as_store(), Artifact(name, number, head, {}))
        label_sets.add_version(conn, Version(name, number, captioner.model_id, ["cat", "dog"],
                                             {}, 2, key, sha, datetime.now(UTC)))  # fmt: skip
        label_sets.activate(conn, name, number, None)
        item = accepted(conn, "image", thumbnail_key=f"thumbnails/{name}.jpg")
    store.objects[item.key] = store.objects[f"thumbnails/{name}.jpg"] = jpeg()
    handler = CaptionHandler(store.as_store(), pool, captioner, KafkaSettings())
    try:
        [result] = handler.handle([message(TOPIC, item)])
        with pool.connection() as conn:
            tags = conn.execute(
                "SELECT label_set, version, label, confidence FROM media_labels "
                "WHERE media_id = %(id)s",
                {"id": item.media_id},
            ).fetchall()
    finally:
        handler.fetchers.shutdown()
        with pool.connection() as conn:
            label_sets.delete(conn, name)  # the database is shared: no set stays active

    assert isinstance(result, Done) and result.outcome is Outcome.OK
    assert [(t["label_set"], t["version"], t["label"]) for t in tags] == [(name, 1, "cat")]
    assert tags[0]["confidence"] == pytest.approx(1 / (1 + np.exp(-6)), rel=1e-6)
