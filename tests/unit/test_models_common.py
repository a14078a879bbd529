"""The pieces under the models: caption text, vocabulary, revisions, sources, device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glimpse.models.device import select_device
from glimpse.models.imagenet import (
    IMAGENET_CLASSES,
    CaptionStyle,
    ImageNetVocabulary,
    compose_caption,
    with_article,
)
from glimpse.models.revision import directory_revision, file_revision
from glimpse.models.sources import display_name, resolve_pretrained


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tabby cat", "a tabby cat"),
        ("espresso", "an espresso"),
        ("Egyptian Mau", "an Egyptian Mau"),
        ("European garden spider", "a European garden spider"),
        ("unicycle", "a unicycle"),
        ("hourglass", "an hourglass"),
        ("jeans", "jeans"),
        ("sunglasses", "sunglasses"),
        ("beer glass", "a beer glass"),
        ("school bus", "a school bus"),
        ("praying mantis", "a praying mantis"),
        ("a cat having a striped coat", "a cat having a striped coat"),
    ],
)
def test_articles(name: str, expected: str) -> None:
    assert with_article(name) == expected


def test_caption_is_label_sentence_then_descriptions() -> None:
    caption = compose_caption(
        [("tabby cat", 0.5), ("Egyptian Mau", 0.2), ("lynx", 0.1)],
        ["A striped cat.", None, "A wild cat."],
        CaptionStyle(described_labels=2),
    )
    # the second label has no description; the third is past the two described
    assert caption == "A photo of a tabby cat, an Egyptian Mau, a lynx. A striped cat."


def test_vocabulary_merges_classes_that_share_a_name() -> None:
    vocabulary = ImageNetVocabulary.load()
    assert len(vocabulary.class_to_name) == IMAGENET_CLASSES
    assert len(set(vocabulary.names)) == len(vocabulary.names) < IMAGENET_CLASSES
    missile, projectile = vocabulary.class_to_name[657], vocabulary.class_to_name[744]
    assert missile == projectile
    assert vocabulary.names[missile] == "missile"
    assert vocabulary.names[vocabulary.class_to_name[281]] == "tabby cat"
    described = [text for text in vocabulary.descriptions if text]
    assert len(described) > 950
    assert not any("No description" in text for text in described)


def test_file_revision_is_a_content_hash(tmp_path: Path) -> None:
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"weights")
    second.write_bytes(b"more weights")
    revision = file_revision([first, second])
    assert len(revision) == 12
    assert file_revision([second, first]) == revision
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "a.bin").write_bytes(b"weights")
    (copy / "b.bin").write_bytes(b"more weights")
    assert file_revision([copy / "a.bin", copy / "b.bin"]) == revision
    second.write_bytes(b"changed weights")
    assert file_revision([first, second]) != revision


def test_directory_revision_reads_weights_and_config(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"w")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "README.md").write_text("docs")
    revision = directory_revision(tmp_path)
    (tmp_path / "README.md").write_text("other docs")
    assert directory_revision(tmp_path) == revision
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    assert directory_revision(tmp_path) != revision
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError):
        directory_revision(tmp_path)


def test_sources(tmp_path: Path) -> None:
    local = tmp_path / "my-blip"
    local.mkdir()
    assert display_name(str(local)) == "my-blip"
    assert display_name(f"{local}/") == "my-blip"
    assert resolve_pretrained(str(local), None) == local
    assert display_name("Salesforce/blip-image-captioning-base") == (
        "Salesforce/blip-image-captioning-base"
    )


def test_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    assert select_device("cuda").type == expected  # no GPU: warn and run on the CPU
