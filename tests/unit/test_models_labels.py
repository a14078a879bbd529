"""The offline default captioner: real EfficientNet-Lite0 weights on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models_fixtures import photo
from PIL import Image

from glimpse.config import ModelSettings
from glimpse.models import Captioner, ImageAnalysis, ModelNotLoadedError, load_captioner
from glimpse.models.imagenet import with_article
from glimpse.models.labels import IMAGE_SIZE, MODEL_ID, VISUAL_DIM, crop_resized, network_input

CATS = {"tabby cat", "a cat having a striped coat", "Egyptian Mau", "Persian cat", "Siamese cat"}
COFFEE = {"espresso", "tea cup", "coffee mug", "cup"}


@pytest.fixture(scope="module")
def captioner() -> Captioner:
    model = load_captioner(ModelSettings())
    model.load()
    return model


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {name: photo(name) for name in ("cat", "coffee", "rocket", "astronaut", "motorcycle")}


@pytest.fixture(scope="module")
def analyses(captioner: Captioner, photos: dict[str, Image.Image]) -> dict[str, ImageAnalysis]:
    return dict(zip(photos, captioner.predict(list(photos.values())), strict=True))


def names(analysis: ImageAnalysis) -> set[str]:
    return {label for label, _ in analysis.labels}


def test_identity(captioner: Captioner) -> None:
    assert captioner.loaded
    assert captioner.model_id == MODEL_ID == "labels/efficientnet-lite0"
    assert len(captioner.revision) == 12
    int(captioner.revision, 16)
    assert captioner.visual_dim == VISUAL_DIM == 1280


def test_the_cat_photo_is_a_cat(analyses: dict[str, ImageAnalysis]) -> None:
    cat = analyses["cat"]
    assert cat.labels[0][0] in CATS
    assert names(cat) <= CATS
    assert cat.caption.startswith(f"A photo of {with_article(cat.labels[0][0])}")


def test_the_coffee_photo_is_an_espresso(analyses: dict[str, ImageAnalysis]) -> None:
    coffee = analyses["coffee"]
    assert coffee.labels[0][0] == "espresso"
    assert coffee.labels[0][1] > 0.5
    assert names(coffee) <= COFFEE
    assert "coffee" in coffee.caption


def test_label_scores(analyses: dict[str, ImageAnalysis]) -> None:
    settings = ModelSettings()
    for analysis in analyses.values():
        scores = [score for _, score in analysis.labels]
        assert 1 <= len(scores) <= settings.labels_top_k
        assert scores == sorted(scores, reverse=True)
        assert all(0 < score <= 1 for score in scores)
        assert all(score >= settings.labels_min_probability for score in scores[1:])
        assert len(names(analysis)) == len(scores)  # duplicate class names merged


def test_caption_reads_as_a_sentence_then_descriptions(photos: dict[str, Image.Image]) -> None:
    model = load_captioner(ModelSettings(labels_described_min_probability=0.0))
    model.load()
    [cat] = model.predict([photos["cat"]])
    first_sentence, rest = cat.caption.split(". ", 1)
    for label, _ in cat.labels:
        assert label in first_sentence
    assert "domestic cat" in rest  # from the description: the words people type


def test_a_guess_lends_no_description(photos: dict[str, Image.Image]) -> None:
    # No label is ever this sure: the caption is the label sentence alone.
    model = load_captioner(ModelSettings(labels_described_min_probability=1.01))
    model.load()
    for analysis in model.predict(list(photos.values())):
        assert analysis.caption.count(".") == 1
        assert analysis.caption.startswith("A photo of ")


def test_descriptions_are_cut_to_their_first_sentences(
    photos: dict[str, Image.Image], analyses: dict[str, ImageAnalysis]
) -> None:
    whole = load_captioner(ModelSettings(labels_description_chars=0))
    whole.load()
    paragraphs = whole.predict(list(photos.values()))
    for cut, paragraph in zip(analyses.values(), paragraphs, strict=True):
        assert paragraph.caption.startswith(cut.caption.split(". ", 1)[0])
        assert len(cut.caption) <= len(paragraph.caption)
    total_cut = sum(len(a.caption) for a in analyses.values())
    assert total_cut < 0.75 * sum(len(p.caption) for p in paragraphs)


def test_top_label_is_kept_below_the_minimum(photos: dict[str, Image.Image]) -> None:
    model = load_captioner(ModelSettings(labels_top_k=5, labels_min_probability=0.999))
    model.load()
    [analysis] = model.predict([photos["astronaut"]])
    assert len(analysis.labels) == 1
    assert analysis.labels[0][1] < 0.999


def test_more_labels_when_asked(photos: dict[str, Image.Image]) -> None:
    model = load_captioner(ModelSettings(labels_top_k=5, labels_min_probability=0.0))
    model.load()
    [analysis] = model.predict([photos["astronaut"]])
    assert len(analysis.labels) == 5


def test_visual_vectors(analyses: dict[str, ImageAnalysis]) -> None:
    for analysis in analyses.values():
        assert analysis.visual is not None
        assert analysis.visual.shape == (VISUAL_DIM,)
        assert analysis.visual.dtype == np.float32
        assert np.linalg.norm(analysis.visual) == pytest.approx(1.0, abs=1e-5)


def test_a_smaller_crop_is_nearer_its_original_than_other_photos(
    captioner: Captioner,
    photos: dict[str, Image.Image],
    analyses: dict[str, ImageAnalysis],
) -> None:
    for name, original in photos.items():
        width, height = original.size
        crop = original.crop((width // 10, height // 10, width - width // 8, height)).resize(
            (width // 2, height // 2)
        )
        [copy] = captioner.predict([crop])
        assert copy.visual is not None
        similarity = {
            other: float(np.dot(copy.visual, analysis.visual))
            for other, analysis in analyses.items()
            if analysis.visual is not None
        }
        assert max(similarity, key=lambda other: similarity[other]) == name


def test_batches_equal_one_at_a_time(
    captioner: Captioner,
    photos: dict[str, Image.Image],
    analyses: dict[str, ImageAnalysis],
) -> None:
    # The CPU runs one image per pass; force real batches to compare against.
    saved = captioner.batch_size
    captioner.batch_size = 4
    try:
        batched = captioner.predict(list(photos.values()))
    finally:
        captioner.batch_size = saved
    for one, other in zip(analyses.values(), batched, strict=True):
        assert one.caption == other.caption
        assert [label for label, _ in one.labels] == [label for label, _ in other.labels]
        np.testing.assert_allclose(
            [score for _, score in one.labels], [score for _, score in other.labels], atol=1e-4
        )
        assert one.visual is not None
        assert other.visual is not None
        np.testing.assert_allclose(one.visual, other.visual, atol=1e-4)


def test_the_same_image_twice_gives_the_same_result(
    captioner: Captioner, photos: dict[str, Image.Image], analyses: dict[str, ImageAnalysis]
) -> None:
    [again] = captioner.predict([photos["coffee"]])
    assert again.caption == analyses["coffee"].caption
    assert again.labels == analyses["coffee"].labels


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (300, 200), 128),
        Image.new("RGBA", (64, 64), (255, 0, 0, 100)),
        Image.new("P", (50, 80)),
        Image.new("RGB", (1, 1), (0, 0, 255)),
        Image.new("RGB", (4000, 3), (0, 255, 0)),
    ],
    ids=["grey", "rgba", "palette", "one-pixel", "sliver"],
)
def test_any_mode_and_shape(captioner: Captioner, image: Image.Image) -> None:
    [analysis] = captioner.predict([image])
    assert analysis.caption.startswith("A photo of ")
    assert analysis.labels


def test_network_input_matches_the_training_input(photos: dict[str, Image.Image]) -> None:
    crop = crop_resized(photos["cat"])
    assert crop.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    batch = network_input(torch.from_numpy(np.stack([crop, crop])))
    assert batch.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert batch.dtype == torch.float32
    assert -1.0 <= batch.min() < batch.max() <= 1.0
    # the same numbers as scaling the bytes on the CPU in float32
    expected = (crop.astype(np.float32) - 127.0) / 128.0
    assert np.array_equal(batch[0].permute(1, 2, 0).numpy(), expected)


def test_nothing_in_nothing_out(captioner: Captioner) -> None:
    assert captioner.predict([]) == []


def test_predict_before_load_raises() -> None:
    model = load_captioner(ModelSettings())
    assert not model.loaded
    with pytest.raises(ModelNotLoadedError):
        model.predict([Image.new("RGB", (8, 8))])
    with pytest.raises(ModelNotLoadedError):
        _ = model.revision
