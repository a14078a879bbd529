"""The text-to-visual bridge: a ridge map from text vectors onto a classifier's class
directions, so words rank images by what they look like."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from models_fixtures import photo

from glimpse.config import ModelSettings
from glimpse.models import load_captioner
from glimpse.models.bridge import (
    ClassSpace,
    Matrix,
    TextToVisual,
    build,
    cache_path,
    class_directions,
    fit,
    load_or_build,
)
from glimpse.models.text import TextEmbedder, load_text_embedder


def test_fit_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(8, 5)).astype(np.float32)
    texts = rng.normal(size=(200, 8)).astype(np.float32)

    matrix = fit(texts, texts @ truth, ridge=1e-3)

    np.testing.assert_allclose(matrix, truth, atol=1e-3)


def test_class_directions_drop_what_every_class_shares() -> None:
    # every class shares a large component (5, 5, 5); each adds one axis of its own
    weights = np.full((3, 3), 5.0, dtype=np.float32) + np.eye(3, dtype=np.float32)

    directions = class_directions(weights)

    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(directions.sum(axis=0), 0.0, atol=1e-6)
    assert directions[0].argmax() == 0 and directions[2].argmax() == 2


def _bag_of_words(vocabulary: Sequence[str]) -> Callable[[Sequence[str]], Matrix]:
    def embed(texts: Sequence[str]) -> Matrix:
        rows = np.array(
            [[float(word in text.lower().split()) for word in vocabulary] for text in texts],
            dtype=np.float32,
        )
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    return embed


def test_words_of_a_class_point_to_the_images_of_that_class() -> None:
    # Three classes in a 4-d feature space; the words of each class name it.
    weights = np.array([[3, 0, 0, 1], [0, 3, 0, 1], [0, 0, 3, 1]], dtype=np.float32)
    space = ClassSpace(("a red apple", "a blue sky", "green grass"), (0, 1, 2), weights)
    embed = _bag_of_words(["red", "apple", "blue", "sky", "green", "grass"])
    bridge = build(space, embed, "words", "features", ridge=0.01)
    images = np.array([[0.1, 0.9, 0.1, 1], [0.9, 0.1, 0.1, 1], [0.1, 0.1, 0.9, 1]])
    images = images / np.linalg.norm(images, axis=1, keepdims=True)

    query = bridge.to_visual(embed(["sky"])[0])

    assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-6
    assert int(np.argmax(images @ query)) == 0  # the blue image


def test_a_fitted_bridge_is_cached_and_a_damaged_cache_is_fitted_again(tmp_path: Path) -> None:
    path = cache_path(tmp_path, "text@1", "visual@1")
    fitted = []

    def build_it() -> TextToVisual:
        fitted.append(1)
        return TextToVisual("text", "visual", np.eye(3, dtype=np.float32))

    first = load_or_build(path, build_it, "text", "visual")
    again = load_or_build(path, build_it, "text", "visual")
    path.write_bytes(b"not a matrix")
    repaired = load_or_build(path, build_it, "text", "visual")

    assert len(fitted) == 2  # the first time and after the damage, not in between
    np.testing.assert_array_equal(again.matrix, first.matrix)
    np.testing.assert_array_equal(repaired.matrix, first.matrix)
    assert not list(path.parent.glob("*.partial"))


def test_another_model_revision_has_its_own_cache_file(tmp_path: Path) -> None:
    assert cache_path(tmp_path, "text@1", "visual@1") != cache_path(tmp_path, "text@2", "visual@1")
    assert cache_path(tmp_path, "text@1", "visual@1") != cache_path(tmp_path, "text@1", "visual@2")


@dataclass(frozen=True)
class RealBridge:
    bridge: TextToVisual
    embedder: TextEmbedder
    visual: dict[str, Matrix]  # sample photo -> its visual vector


@pytest.fixture(scope="module")
def real() -> RealBridge:
    """The offline default models, bridged; the sample photos' visual vectors."""
    captioner = load_captioner(ModelSettings())
    captioner.load()
    embedder = load_text_embedder(ModelSettings())
    embedder.load()
    space = captioner.class_space()
    assert space is not None
    bridge = build(space, embedder.embed, embedder.model_id, captioner.model_id)
    names = ["cat", "coffee", "rocket", "motorcycle"]
    analyses = captioner.predict([photo(name) for name in names])
    visual = {n: a.visual for n, a in zip(names, analyses, strict=True) if a.visual is not None}
    return RealBridge(bridge, embedder, visual)


@pytest.mark.parametrize(
    ("words", "meant"),
    [
        ("my kitty", "cat"),
        ("a hot drink", "coffee"),
        ("a spacecraft lifting off", "rocket"),
        ("riding a motorbike", "motorcycle"),
    ],
)
def test_everyday_words_find_the_photo_through_the_real_models(
    real: RealBridge, words: str, meant: str
) -> None:
    query = real.bridge.to_visual(real.embedder.embed([words])[0])

    ranked = sorted(real.visual, key=lambda name: -float(real.visual[name] @ query))

    assert ranked[0] == meant
