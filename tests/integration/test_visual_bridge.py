"""Typed words also rank the pictures themselves, without a joint model: the API fits
the text-to-visual bridge at start (glimpse/models/bridge.py) and asks a third list."""

from __future__ import annotations

import time
import uuid

import httpx
import numpy as np
import pytest
from harness import RunningStack
from helpers import api, connect, search, upload_sample_photos
from pgvector.psycopg import register_vector

from glimpse.config import ModelSettings
from glimpse.db import vectors
from glimpse.models import load_captioner
from glimpse.models.bridge import TextToVisual, cache_path, load_or_build
from glimpse.models.text import load_text_embedder
from glimpse.models.whisper_assets import resolve_cache_root

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def photos(stack: RunningStack) -> dict[str, str]:
    return upload_sample_photos(stack)


def wait_bridge_ready(stack: RunningStack, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    status = ""
    while time.monotonic() < deadline:
        status = httpx.get(f"{api(stack)}/readyz", timeout=10).json().get("text_to_visual", "")
        if status == "ok":
            return
        time.sleep(0.5)
    raise AssertionError(f"the bridge never got ready: {status!r}")


def test_a_typed_query_ranks_the_pictures_through_the_bridge_the_api_fitted(
    stack: RunningStack, photos: dict[str, str]
) -> None:
    wait_bridge_ready(stack)
    # The bridge the API fitted, read from the cache under the key of these very models.
    embedder = load_text_embedder(ModelSettings())
    embedder.load()
    captioner = load_captioner(ModelSettings())
    captioner.load()
    path = cache_path(
        resolve_cache_root(stack.settings.models, stack.settings.home),
        f"{embedder.model_id}@{embedder.revision}",
        f"{captioner.model_id}@{captioner.revision}",
    )
    assert path.is_file()

    def not_fitted_here() -> TextToVisual:
        raise AssertionError("the API should have cached it")

    bridge = load_or_build(path, not_fitted_here, embedder.model_id, captioner.model_id)
    query = "a cup of coffee"
    [text_vector] = embedder.embed([query])
    expected_query = bridge.to_visual(text_vector)
    visual = vectors.VectorModel(captioner.model_id, "visual", 1280)

    found = search(stack, query, prefix="samples/")

    compared = [hit for hit in found["hits"] if hit["image_similarity"] is not None]
    assert compared and found["hits"][0]["key"] == photos["coffee"]
    with connect(stack.settings) as conn:
        register_vector(conn)
        for hit in compared:
            stored = vectors.vector_of(conn, uuid.UUID(hit["id"]), visual)
            assert stored is not None
            expected = float(np.asarray(stored, np.float32) @ expected_query)
            assert hit["image_similarity"] == pytest.approx(expected, abs=5e-3), hit["key"]
            # a library under 8 images has no typical score for the picture to stand out of
            standout = hit["image_standout"]
            assert ("image" in hit["matched_in"]) == (standout is not None and standout >= 1.5)
