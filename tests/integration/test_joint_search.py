"""The joint image-text role on a real stack: the caption stage stores each image's vector
of the joint model, search ranks the images themselves as a third list, repair fills
what is missing. Its own stack, configured with a tiny randomly initialised CLIP built
from a config (no CLIP weights can be had offline): its vectors mean nothing, so every
answer is checked against what the model itself computes, not against meaning.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from harness import RunningStack, private_settings, running_stack
from helpers import (
    api,
    connect,
    glimpse,
    search,
    store_of,
    unique_png,
    upload_sample_photos,
    wait_searchable,
)
from models_fixtures import build_tiny_clip
from pgvector.psycopg import register_vector

from glimpse.db import vectors
from glimpse.models.joint import JointModel
from glimpse.stack.supervisor import service_env

pytestmark = pytest.mark.integration

JOINT = "joint/tiny-clip"


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="module")
def joint_stack(tmp_path_factory: pytest.TempPathFactory, clip_dir: Path) -> Iterator[RunningStack]:
    settings = private_settings(tmp_path_factory.mktemp("joint-home"))
    settings.models.joint_model = str(clip_dir)
    settings.search.model_check_s = 0.5
    with running_stack(settings) as running:
        yield running


@pytest.fixture(scope="module")
def photos(joint_stack: RunningStack) -> dict[str, str]:
    # Enough images for a typical score (relevance's min_sample): the photos and a few
    # small generated ones.
    store = store_of(joint_stack.settings)
    extra = {f"pattern-{seed}": f"patterns/{seed}.png" for seed in range(4)}
    for seed, key in enumerate(extra.values()):
        store.put(key, unique_png(seed, (96, 64)), "image/png")
    wait_searchable(joint_stack, list(extra.values()))
    return {**upload_sample_photos(joint_stack), **extra}


@pytest.fixture(scope="module")
def clip(clip_dir: Path) -> JointModel:
    model = JointModel(str(clip_dir), device="cpu", cache_dir=None)
    model.load()
    return model


def joint_vectors(stack: RunningStack) -> dict[str, np.ndarray]:
    with connect(stack.settings) as conn:
        register_vector(conn)
        rows = conn.execute(
            "SELECT m.key, e.embedding FROM embeddings e JOIN media m ON m.id = e.media_id "
            "WHERE e.model = %(model)s AND e.kind = 'joint'",
            {"model": JOINT},
        ).fetchall()
    return {r["key"]: np.asarray(r["embedding"].to_numpy(), np.float32) for r in rows}


def wait_search_with_images(stack: RunningStack, q: str) -> dict[str, Any]:
    """The API picks the active joint model up within a few checks of the registry."""
    deadline = time.monotonic() + 60
    while True:
        found = search(stack, q)
        if any(hit["image_similarity"] is not None for hit in found["hits"]):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.5)


def test_each_image_gets_a_vector_of_the_joint_model_from_its_thumbnail(
    joint_stack: RunningStack, photos: dict[str, str]
) -> None:
    stored = joint_vectors(joint_stack)
    assert set(stored) == set(photos.values())
    assert {v.shape for v in stored.values()} == {(16,)}
    with connect(joint_stack.settings) as conn:
        active = vectors.active_model(conn, "joint")
    assert active == vectors.VectorModel(JOINT, "joint", 16)


def test_search_ranks_the_images_themselves_with_the_joint_models_query_vector(
    joint_stack: RunningStack, photos: dict[str, str], clip: JointModel
) -> None:
    query = "a cup of coffee"
    found = wait_search_with_images(joint_stack, query)
    stored = joint_vectors(joint_stack)
    [expected_query] = clip.embed([query])
    compared = [hit for hit in found["hits"] if hit["image_similarity"] is not None]
    assert compared
    for hit in compared:
        expected = float(stored[hit["key"]] @ expected_query)
        assert hit["image_similarity"] == pytest.approx(expected, abs=5e-3), hit["key"]
        standout = hit["image_standout"]
        assert standout is not None  # ten images: a typical score to stand out from
        assert ("image" in hit["matched_in"]) == (standout >= 1.5)
    metrics = httpx.get(f"{api(joint_stack)}/metrics").text
    counted = re.search(r'glimpse_search_phase_seconds_count\{phase="joint_sql"\} (\S+)', metrics)
    assert counted and float(counted.group(1)) >= 1


def test_repair_gives_back_an_images_lost_joint_vector(
    joint_stack: RunningStack, photos: dict[str, str]
) -> None:
    lost = photos["horse"]
    with connect(joint_stack.settings) as conn:
        conn.execute(
            "DELETE FROM embeddings e USING media m WHERE m.id = e.media_id "
            "AND m.key = %(key)s AND e.kind = 'joint'",
            {"key": lost},
        )
    env = {**os.environ, **service_env(joint_stack.settings)}
    repaired = glimpse(env, "backfill", "--stage", "caption", "--missing")
    assert repaired.returncode == 0, repaired.stderr
    assert lost in joint_vectors(joint_stack)
