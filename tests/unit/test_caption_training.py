"""Training a captioner on shapes the test draws, with the real Lite0 backbone: it
learns, it is reproducible, its artifact reloads, and as a backend it names what it sees."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from caption_shapes import COLOURS, SHAPES, draw, one_torch_thread, shape_set
from PIL import Image

from glimpse.caption_training import (
    Trained,
    TrainingError,
    TrainingSettings,
    Vector,
    split,
    train,
    visual_vectors,
)
from glimpse.config import ModelSettings
from glimpse.models import Captioner, load_captioner
from glimpse.models import caption_artifact as artifacts
from glimpse.models.caption_scores import bleu4
from glimpse.models.labels import MODEL_ID as LABELS_ID
from glimpse.models.trained import TrainedCaptioner

SETTINGS = TrainingSettings(seed=7, epochs=25, patience=6)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def backbone() -> Captioner:
    model = load_captioner(ModelSettings(device="cpu"))
    model.load()
    return model


@pytest.fixture(scope="module")
def shapes(backbone: Captioner) -> tuple[dict[str, Vector], dict[str, list[str]]]:
    images, captions = shape_set(variants=4)
    return visual_vectors(backbone, images), captions


@pytest.fixture(scope="module")
def trained(shapes: tuple[dict[str, Vector], dict[str, list[str]]]) -> tuple[Trained, float]:
    features, captions = shapes
    started = time.perf_counter()
    result = train(features, captions, SETTINGS)
    return result, time.perf_counter() - started


@pytest.fixture(scope="module")
def artifact_dir(
    tmp_path_factory: pytest.TempPathFactory, trained: tuple[Trained, float], backbone: Captioner
) -> Path:
    result, seconds = trained
    config = {"backbone": backbone.model_id, "backbone_revision": backbone.revision, "seed": 7}
    return artifacts.save(tmp_path_factory.mktemp("captioners"), "shapes", result.decoder,
                          result.vocab, config, result.metrics(SETTINGS, seconds))  # fmt: skip


@pytest.fixture(scope="module")
def captioner(artifact_dir: Path) -> Captioner:
    model = load_captioner(
        ModelSettings(captioner="trained", trained_captioner=str(artifact_dir), device="cpu")
    )
    model.load()
    return model


def test_validation_bleu_rises_and_beats_always_saying_the_commonest_caption(
    trained: tuple[Trained, float],
) -> None:
    result, seconds = trained
    bleus = [epoch.validation_bleu for epoch in result.history]
    assert result.best.validation_bleu > bleus[0] + 10
    assert result.best.validation_bleu > result.constant_bleu + 20
    assert result.best.validation_bleu == max(bleus)
    # images, not pairs, are held out: no validation image was trained on
    assert not set(result.train_images) & set(result.validation_images)
    assert len(result.validation_images) == round(48 * SETTINGS.validation_fraction)
    print(f"trained {len(result.history)} epochs in {seconds:.1f} s")


def test_training_stops_early_once_bleu_stops_improving(
    shapes: tuple[dict[str, Vector], dict[str, list[str]]],
) -> None:
    features, captions = shapes
    result = train(features, captions, TrainingSettings(seed=7, epochs=200, patience=2))
    assert len(result.history) < 200
    assert len(result.history) - result.best_epoch == 2


def test_the_same_seed_trains_the_same_weights_and_another_seed_does_not(
    shapes: tuple[dict[str, Vector], dict[str, list[str]]],
) -> None:
    features, captions = shapes

    def weights(seed: int) -> dict[str, torch.Tensor]:
        quick = TrainingSettings(seed=seed, epochs=2)
        return train(features, captions, quick).decoder.state_dict()

    first, again, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_the_artifact_reloads_and_captions_exactly_as_the_trained_decoder(
    trained: tuple[Trained, float], artifact_dir: Path, captioner: Captioner,
    shapes: tuple[dict[str, Vector], dict[str, list[str]]],
) -> None:  # fmt: skip
    result, _ = trained
    features, _ = shapes
    names = result.validation_images
    vectors = torch.from_numpy(np.stack([features[name] for name in names]))
    expected = [result.vocab.decode(ids) for ids in result.decoder.greedy(vectors)]
    reloaded = artifacts.load(artifact_dir)
    assert [reloaded.vocab.decode(i) for i in reloaded.decoder.greedy(vectors)] == expected
    images, _ = shape_set(variants=4)
    assert [a.caption for a in captioner.predict([images[n] for n in names])] == expected
    # the artifact is named by its content: saving it again is the same artifact
    assert artifact_dir.name == f"shapes-{artifacts.revision_of(artifact_dir)}"
    assert reloaded.metrics["best_epoch"] == result.best_epoch
    assert reloaded.config["backbone"] == LABELS_ID


def test_the_backend_names_the_colour_and_shape_of_images_it_never_saw(
    captioner: Captioner, artifact_dir: Path
) -> None:
    combos = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    unseen = [draw(colour, shape, variant=1000) for colour, shape in combos]
    analyses = captioner.predict(unseen)
    right = [
        (colour, shape)
        for (colour, shape), analysis in zip(combos, analyses, strict=True)
        if {colour, shape} <= set(analysis.caption.split())
    ]
    assert len(right) >= len(combos) - 1, [a.caption for a in analyses]
    first = analyses[0]
    # the labels and the visual vector of the one backbone pass stay with the caption
    assert first.labels and first.visual is not None and first.visual.shape == (1280,)
    assert captioner.model_id == f"trained/{artifact_dir.name}"


def test_trained_captions_score_better_bleu_than_the_labels_captions(
    captioner: Captioner, backbone: Captioner
) -> None:
    combos = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    unseen: list[Image.Image] = [draw(c, s, variant=2000) for c, s in combos]
    references = [[f"a {c} {s} on a white background", f"a picture of a {c} {s}"]
                  for c, s in combos]  # fmt: skip
    ours = bleu4([a.caption for a in captioner.predict(unseen)], references)
    labels = bleu4([a.caption for a in backbone.predict(unseen)], references)
    assert ours > labels + 30


def test_a_missing_artifact_or_an_empty_setting_is_said_in_words(tmp_path: Path) -> None:
    missing = load_captioner(
        ModelSettings(
            captioner="trained", trained_captioner="shop-0123456789ab", cache_dir=tmp_path
        )
    )
    assert missing.model_id == "trained/shop-0123456789ab"
    with pytest.raises(artifacts.ArtifactError, match=r"not in .*captioners and no bucket"):
        missing.load()
    with pytest.raises(artifacts.ArtifactError, match="TRAINED_CAPTIONER"):
        load_captioner(ModelSettings(captioner="trained"))
    (tmp_path / "half").mkdir()
    with pytest.raises(artifacts.ArtifactError, match="missing"):
        artifacts.load(tmp_path / "half")


def test_an_artifact_of_another_backbone_is_refused(artifact_dir: Path, tmp_path: Path) -> None:
    loaded = artifacts.load(artifact_dir)
    other = artifacts.save(tmp_path, "other", loaded.decoder, loaded.vocab,
                           {"backbone": "blip/something"}, {})  # fmt: skip
    model = load_captioner(ModelSettings(captioner="trained", trained_captioner=str(other)))
    assert isinstance(model, TrainedCaptioner)
    with pytest.raises(artifacts.ArtifactError, match="trained on blip/something"):
        model.load()


def test_split_holds_out_whole_images_and_needs_two() -> None:
    train_part, held = split([f"{i}.png" for i in range(10)], 0.2, seed=3)
    assert len(held) == 2 and len(train_part) == 8
    assert split([f"{i}.png" for i in range(10)], 0.2, seed=3) == (train_part, held)
    assert split(["a.png", "b.png"], 0.5, seed=0)[1] in (["a.png"], ["b.png"])
    with pytest.raises(TrainingError, match="at least 2"):
        split(["a.png"], 0.2, seed=0)
