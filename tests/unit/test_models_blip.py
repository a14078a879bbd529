"""BLIP through the real loading path, on a tiny randomly initialised checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from models_fixtures import build_tiny_blip, photo
from PIL import Image

from glimpse.config import ModelSettings
from glimpse.models import Captioner, load_captioner

MAX_TOKENS = 8


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_blip(tmp_path_factory.mktemp("models") / "tiny-blip")


@pytest.fixture(scope="module")
def captioner(checkpoint: Path) -> Captioner:
    settings = ModelSettings(
        captioner="blip", blip_model=str(checkpoint), blip_max_new_tokens=MAX_TOKENS, device="cpu"
    )
    model = load_captioner(settings)
    model.load()
    return model


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = [
        Image.fromarray(rng.integers(0, 256, (40 + 9 * i, 60, 3), dtype=np.uint8)) for i in range(3)
    ]
    return [photo("cat"), photo("coffee"), photo("rocket"), *noise, Image.new("L", (30, 20))]


def test_identity(captioner: Captioner) -> None:
    assert captioner.model_id == "blip/tiny-blip"
    assert len(captioner.revision) == 12
    assert captioner.visual_dim == 32


def test_a_batch_gets_one_caption_per_image(
    captioner: Captioner, images: list[Image.Image]
) -> None:
    analyses = captioner.predict(images)
    assert len(analyses) == len(images)
    for analysis in analyses:
        assert isinstance(analysis.caption, str)
        assert len(analysis.caption.split()) <= MAX_TOKENS  # every token is a whole word
        assert analysis.labels == []
        assert analysis.visual is not None
        assert analysis.visual.shape == (32,)
        assert analysis.visual.dtype == np.float32
        assert np.linalg.norm(analysis.visual) == pytest.approx(1.0, abs=1e-5)
    # Different images, different captions: rows cannot have been mixed up unseen.
    assert len({analysis.caption for analysis in analyses}) > 2


def test_batch_equals_one_by_one(captioner: Captioner, images: list[Image.Image]) -> None:
    batched = captioner.predict(images)
    for image, analysis in zip(images, batched, strict=True):
        [alone] = captioner.predict([image])
        assert alone.caption == analysis.caption
        assert alone.visual is not None
        assert analysis.visual is not None
        np.testing.assert_allclose(alone.visual, analysis.visual, atol=1e-5)


def test_deterministic(captioner: Captioner, images: list[Image.Image]) -> None:
    first = [analysis.caption for analysis in captioner.predict(images)]
    assert [analysis.caption for analysis in captioner.predict(images)] == first


def test_revision_follows_the_weights_not_the_location(
    tmp_path: Path, captioner: Captioner
) -> None:
    same = load_captioner(
        ModelSettings(captioner="blip", blip_model=str(build_tiny_blip(tmp_path / "a" / "x")))
    )
    other = load_captioner(
        ModelSettings(
            captioner="blip", blip_model=str(build_tiny_blip(tmp_path / "b" / "x", seed=1))
        )
    )
    same.load()
    other.load()
    assert same.revision == captioner.revision
    assert other.revision != captioner.revision


def test_a_hub_id_is_the_model_id_without_loading() -> None:
    model = load_captioner(ModelSettings(captioner="blip"))
    assert model.model_id == "blip/Salesforce/blip-image-captioning-base"
    assert not model.loaded
