"""``picture_vector``: a picture sent to the API becomes the visual vector the pipeline
would store for it (real EfficientNet-Lite0, real libmagic and Pillow)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from badfiles import png_bomb, wav_sine
from fastapi import HTTPException
from models_fixtures import photo
from PIL import Image
from psycopg_pool import ConnectionPool

from glimpse.config import ImageSearchSettings, LimitsSettings, ModelSettings, RateLimit
from glimpse.media import Rejected, RejectReason, validate_media
from glimpse.media.thumbnail import decode_thumbnail
from glimpse.models import Captioner, load_captioner
from services.search_api.admission import RateLimiter
from services.search_api.image_queries import VISUAL, ImageQueries, picture_vector
from services.search_api.query_model import QueryModel

CHECKS = LimitsSettings(max_bytes=2 * 1024 * 1024, max_pixels=25_000_000)


@pytest.fixture(scope="module")
def captioner() -> Captioner:
    model = load_captioner(ModelSettings())
    model.load()
    return model


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def test_the_vector_is_the_one_the_caption_stage_makes(captioner: Captioner) -> None:
    upload = encoded(photo("coffee"), "PNG")
    # the pipeline: ingest's checks and thumbnail, the caption stage's decode and model
    thumbnail = validate_media(upload, LimitsSettings()).thumbnail
    assert thumbnail is not None
    [stored] = captioner.predict([decode_thumbnail(thumbnail)])

    checked, vector = picture_vector(upload, captioner, CHECKS)

    assert checked.mime == "image/png" and (checked.width, checked.height) == (600, 400)
    assert stored.visual is not None
    np.testing.assert_array_equal(vector, stored.visual)
    assert vector.shape == (1280,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_a_copy_is_near_and_another_photo_is_not(captioner: Captioner) -> None:
    _, coffee = picture_vector(encoded(photo("coffee"), "PNG"), captioner, CHECKS)
    smaller = photo("coffee").resize((300, 200))  # half size, as a phone would send it
    _, copy = picture_vector(encoded(smaller, "JPEG", quality=80), captioner, CHECKS)
    _, cat = picture_vector(encoded(photo("cat"), "PNG"), captioner, CHECKS)

    assert float(coffee @ copy) > 0.85
    assert float(coffee @ cat) < 0.5


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        (b"", RejectReason.EMPTY, "0 bytes"),
        (b"a text file, not a picture\n" * 10, RejectReason.UNSUPPORTED_TYPE, "text"),
        (wav_sine(1.0), RejectReason.UNSUPPORTED_TYPE, "WAV is audio"),
        (png_bomb(), RejectReason.TOO_MANY_PIXELS, "limit is 25 Mpx"),
        (b"\xff\xd8\xff\xe0" + bytes(2 * 1024 * 1024), RejectReason.TOO_LARGE, "limit is 2 MiB"),
    ],
    ids=["empty", "text", "audio", "bomb", "too-large"],
)
def test_anything_but_a_usable_picture_is_rejected_before_the_model(
    captioner: Captioner, data: bytes, reason: RejectReason, words: str
) -> None:
    admitted: list[int] = []

    @contextmanager
    def admit(pixels: int) -> Iterator[None]:
        admitted.append(pixels)
        yield

    with pytest.raises(Rejected) as refused:
        picture_vector(data, captioner, CHECKS, admit)

    assert refused.value.reason is reason
    assert words in refused.value.message
    assert admitted == []  # nothing was decoded


def test_a_visual_model_that_cannot_load_makes_image_search_unavailable(tmp_path: Path) -> None:
    """Started before the database answers (the configured model serves meanwhile), with
    a BLIP directory that holds no checkpoint: image search says why, without Retry-After."""
    broken = ModelSettings(captioner="blip", blip_model=str(tmp_path), device="cpu")
    nowhere = "host=127.0.0.1 port=1 dbname=glimpse user=glimpse connect_timeout=1"
    with ConnectionPool(nowhere, min_size=0, max_size=1, timeout=1, open=True) as pool:
        model = QueryModel(VISUAL, broken, pool, check_s=0.1)
        queries = ImageQueries(
            ImageSearchSettings(),
            LimitsSettings(),
            model,
            RateLimiter(RateLimit(per_second=1, burst=1), "x"),
        )
        model.start_loading()
        deadline = time.monotonic() + 120
        while queries.status() == "loading":
            assert time.monotonic() < deadline, "never finished loading"
            time.sleep(0.1)
        model.stop()

        assert queries.status().startswith("error: ")
        with pytest.raises(HTTPException) as refused:
            queries.vector_of(encoded(photo("coffee"), "PNG"))

    assert refused.value.status_code == 503
    assert str(refused.value.detail).startswith("search by image is unavailable: ")
    assert not refused.value.headers
