"""The joint image-text model, through the same loading code as a real CLIP checkpoint
(a tiny randomly initialised one: its vectors mean nothing, their plumbing does)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from models_fixtures import build_tiny_blip, build_tiny_clip, photo

from glimpse.config import ModelSettings
from glimpse.models import ModelNotLoadedError
from glimpse.models.joint import JointModel, load_joint_model


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="module")
def joint(clip_dir: Path) -> JointModel:
    model = load_joint_model(ModelSettings(joint_model=str(clip_dir), device="cpu"))
    assert model is not None
    model.load()
    return model


def test_off_unless_configured() -> None:
    assert load_joint_model(ModelSettings()) is None


def test_id_names_the_checkpoint_and_the_space_is_measured(joint: JointModel) -> None:
    assert joint.model_id == "joint/tiny-clip"
    assert joint.dim == 16  # the tiny config's projection_dim
    assert joint.device == "cpu" and len(joint.revision) == 12


def test_images_and_texts_land_in_one_space_as_unit_vectors(joint: JointModel) -> None:
    images = joint.embed_images([photo("cat"), photo("coffee").convert("L")])
    texts = joint.embed(["a cat", "a cup of coffee on a table", ""])
    assert images.shape == (2, 16) and texts.shape == (3, 16)
    assert images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(images[0], images[1])  # different photos, different vectors


def test_batches_give_what_one_at_a_time_gives(joint: JointModel) -> None:
    names = ["cat", "coffee", "rocket", "astronaut", "motorcycle", "horse"]
    together = joint.embed_images([photo(n) for n in names])  # more than one batch
    alone = np.concatenate([joint.embed_images([photo(n)]) for n in names])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert joint.embed([]).shape == (0, 16)


def test_long_text_is_cut_to_the_towers_length_not_refused(joint: JointModel) -> None:
    [row] = joint.embed(["word " * 500])
    assert np.isclose(np.linalg.norm(row), 1.0, rtol=1e-5)


def test_same_weights_same_vectors_other_weights_other_revision(
    clip_dir: Path, joint: JointModel, tmp_path: Path
) -> None:
    again = JointModel(str(clip_dir), device="cpu", cache_dir=None)
    again.load()
    np.testing.assert_array_equal(
        again.embed_images([photo("rocket")]), joint.embed_images([photo("rocket")])
    )
    other = JointModel(
        str(build_tiny_clip(tmp_path / "tiny-clip", seed=1)), device="cpu", cache_dir=None
    )
    other.load()
    assert other.model_id == joint.model_id and other.revision != joint.revision


def test_a_checkpoint_of_another_kind_is_refused_by_name(tmp_path: Path) -> None:
    blip = JointModel(str(build_tiny_blip(tmp_path / "blip")), device="cpu", cache_dir=None)
    with pytest.raises(ValueError, match="blip checkpoint, not a joint image-text model"):
        blip.load()


def test_inference_before_load_raises(clip_dir: Path) -> None:
    with pytest.raises(ModelNotLoadedError):
        JointModel(str(clip_dir), device="cpu", cache_dir=None).embed(["a cat"])
