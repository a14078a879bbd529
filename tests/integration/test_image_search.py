"""Search by image on the real stack: a picture sent to ``POST /v1/search/image`` becomes
a visual vector as an upload does (real EfficientNet-Lite0 in the API) and finds the
photos that look like it; bad bodies get clear 4xx answers and the server keeps going.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from badfiles import png_bomb, wav_sine
from fastapi.testclient import TestClient
from harness import RunningStack
from helpers import PHOTOS, SAMPLES, api, upload_sample_photos
from PIL import Image, ImageDraw

from glimpse.config import RateLimit, Settings
from services.search_api.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def photos(stack: RunningStack) -> dict[str, str]:
    return upload_sample_photos(stack)


def find_by_image(
    stack: RunningStack,
    body: bytes | Iterator[bytes],
    content_type: str = "image/png",
    **params: Any,
) -> httpx.Response:
    return httpx.post(
        f"{api(stack)}/v1/search/image",
        content=body,
        headers={"Content-Type": content_type},
        params=params,
        timeout=60,
    )


def still_answers(stack: RunningStack, photos: dict[str, str]) -> None:
    """The API is up and a good image search still works after a bad one."""
    assert httpx.get(f"{api(stack)}/healthz").status_code == 200
    again = find_by_image(stack, (SAMPLES / PHOTOS["cat"]).read_bytes(), prefix="samples/")
    assert again.status_code == 200 and again.json()["hits"][0]["key"] == photos["cat"]


@pytest.mark.parametrize("name", ["coffee", "cat", "rocket"])
def test_a_photo_finds_itself_first(stack: RunningStack, photos: dict[str, str], name: str) -> None:
    response = find_by_image(stack, (SAMPLES / PHOTOS[name]).read_bytes(), prefix="samples/")

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "labels/efficientnet-lite0"
    first, second = answer["hits"][0], answer["hits"][1]
    assert first["key"] == photos[name]
    # the same bytes make the same thumbnail and vector as the pipeline's (halfvec storage)
    assert first["similarity"] > 0.999
    assert second["similarity"] < 0.9
    assert first["caption"] and first["thumbnail_url"]


def test_a_smaller_jpeg_copy_finds_the_original_first(
    stack: RunningStack, photos: dict[str, str]
) -> None:
    with Image.open(SAMPLES / PHOTOS["astronaut"]) as original:
        copy = original.convert("RGB").resize((300, 300))
    out = io.BytesIO()
    copy.save(out, "JPEG", quality=70)

    response = find_by_image(stack, out.getvalue(), "image/jpeg", prefix="samples/")

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["mime"] == "image/jpeg"
    assert answer["hits"][0]["key"] == photos["astronaut"]
    assert answer["hits"][0]["similarity"] > 0.8


def test_filters_narrow_the_hits(stack: RunningStack, photos: dict[str, str]) -> None:
    body = (SAMPLES / PHOTOS["horse"]).read_bytes()

    two = find_by_image(stack, body, prefix="samples/", limit=2).json()["hits"]
    elsewhere = find_by_image(stack, body, prefix="no-such-folder/").json()["hits"]
    audio = find_by_image(stack, body, kind="audio").json()["hits"]

    assert [h["key"] for h in two][:1] == [photos["horse"]] and len(two) == 2
    assert elsewhere == [] and audio == []


def test_a_drawing_finds_images(stack: RunningStack, photos: dict[str, str]) -> None:
    """What the page's pad sends: dark strokes on white, as PNG."""
    drawing = Image.new("RGB", (400, 400), "white")
    ImageDraw.Draw(drawing).ellipse((80, 80, 320, 320), outline=(17, 17, 17), width=12)
    out = io.BytesIO()
    drawing.save(out, "PNG")

    response = find_by_image(stack, out.getvalue(), prefix="samples/", limit=3)

    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert len(hits) == 3
    assert {h["key"] for h in hits} <= set(photos.values())
    similarities = [h["similarity"] for h in hits]
    assert similarities == sorted(similarities, reverse=True)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"just some text, not a picture\n" * 20, "image/png", 415, "not"),
        (wav_sine(1.0), "image/png", 415, "WAV"),
        ((SAMPLES / "coffee.png").read_bytes(), "text/plain", 415, "image Content-Type"),
        (b"", "image/png", 422, "empty"),
        ((SAMPLES / "coffee.png").read_bytes()[:5000], "image/png", 422, "ends early"),
        (png_bomb(), "image/png", 422, "Mpx"),
    ],
    ids=["text", "audio", "declared-text", "empty", "truncated", "decompression-bomb"],
)
def test_bad_bodies_get_a_clear_4xx(
    stack: RunningStack,
    photos: dict[str, str],
    body: bytes,
    content_type: str,
    status: int,
    words: str,
) -> None:
    api_process = psutil.Process(stack.stack.part("search-api").process.pid)
    before = api_process.memory_info().rss

    response = find_by_image(stack, body, content_type)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert words in response.json()["detail"]
    # the bomb (1.6 gigapixels) was refused from its header, never decoded
    assert api_process.memory_info().rss - before < 100 * 1024 * 1024
    still_answers(stack, photos)


def test_a_picture_over_the_byte_limit_is_413_declared_or_chunked(
    stack: RunningStack, photos: dict[str, str]
) -> None:
    limit = stack.settings.image_search.max_bytes
    too_big = b"\xff\xd8\xff\xe0" + b"\0" * limit

    declared = find_by_image(stack, too_big, "image/jpeg")
    chunked = find_by_image(stack, iter([too_big[:65536], too_big[65536:]]), "image/jpeg")

    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert f"{limit:,} bytes" in response.json()["detail"]
    still_answers(stack, photos)


def own_api(stack: RunningStack, **changes: Any) -> Settings:
    settings = stack.settings.model_copy(deep=True)
    for section, values in changes.items():
        for name, value in values.items():
            setattr(getattr(settings, section), name, value)
    return settings


def wait_image_model(client: TestClient, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while client.get("/readyz").json().get("image_model") != "ok":
        assert time.monotonic() < deadline, "the image model never loaded"
        time.sleep(0.2)


def test_image_search_can_be_turned_off(stack: RunningStack) -> None:
    settings = own_api(stack, image_search={"enabled": False})
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        response = client.post(
            "/v1/search/image",
            content=(SAMPLES / "coffee.png").read_bytes(),
            headers={"Content-Type": "image/png"},
        )
        ready = client.get("/readyz")
        config = client.get("/v1/config").json()

    assert response.status_code == 404
    assert "turned off" in response.json()["detail"]
    assert ready.status_code == 200 and ready.json()["image_model"] == "off"
    assert config["image_search"]["enabled"] is False


def test_image_searches_are_rate_limited_per_client(stack: RunningStack) -> None:
    settings = own_api(stack, api={"image_rate": RateLimit(per_second=0.01, burst=2)})
    body = (SAMPLES / "coffee.png").read_bytes()
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        wait_image_model(client)
        answers = [
            client.post("/v1/search/image", content=body, headers={"Content-Type": "image/png"})
            for _ in range(3)
        ]

    assert [r.status_code for r in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) > 0
