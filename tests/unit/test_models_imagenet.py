"""Caption text from ImageNet labels: which descriptions are lent, cut and cleaned."""

from __future__ import annotations

import unicodedata

import pytest

from glimpse.models.imagenet import (
    CaptionStyle,
    ImageNetVocabulary,
    clean_description,
    compose_caption,
    shorten,
)

CAT = "A domestic cat with a striped coat. Coat colors vary widely. The fur may be long."
MAU = "A spotted cat breed. It is fast."


@pytest.fixture(scope="module")
def vocabulary() -> ImageNetVocabulary:
    return ImageNetVocabulary.load()


def test_only_confident_labels_lend_their_description() -> None:
    style = CaptionStyle(described_min_probability=0.5, described_labels=2, description_chars=None)
    sure = compose_caption([("tabby cat", 0.8), ("Egyptian Mau", 0.1)], [CAT, MAU], style)
    guess = compose_caption([("tabby cat", 0.3), ("Egyptian Mau", 0.1)], [CAT, MAU], style)
    assert sure == f"A photo of a tabby cat, an Egyptian Mau. {CAT}"
    assert guess == "A photo of a tabby cat, an Egyptian Mau."


def test_at_most_described_labels_descriptions() -> None:
    style = CaptionStyle(described_min_probability=0.0, described_labels=1, description_chars=None)
    caption = compose_caption([("tabby cat", 0.5), ("Egyptian Mau", 0.4)], [CAT, MAU], style)
    assert caption.endswith(CAT)
    assert MAU not in caption


def test_a_label_without_a_description_lends_nothing() -> None:
    caption = compose_caption([("web site", 0.9)], [None], CaptionStyle())
    assert caption == "A photo of a web site."


def test_descriptions_are_cut_at_whole_sentences() -> None:
    assert shorten(CAT, 70) == "A domestic cat with a striped coat. Coat colors vary widely."
    assert shorten(CAT, 10) == "A domestic cat with a striped coat."  # the first always stays
    assert shorten(CAT, None) == CAT


def test_words_in_other_scripts_and_typographic_marks_are_cleaned() -> None:
    assert (
        clean_description(
            "A thin film of \u0938\u093e\u092c\u0941\u0928 solution, "
            "\u201cround\u201d\u2014often iridescent. It\u2019s light."
        )
        == 'A thin film of solution, "round", often iridescent. It\'s light.'
    )
    assert clean_description("A caf\u00e9 menu.") == "A caf\u00e9 menu."  # Latin letters stay
    assert clean_description("No description available.") is None


def test_the_shipped_descriptions_are_plain_latin_text(vocabulary: ImageNetVocabulary) -> None:
    descriptions = [text for text in vocabulary.descriptions if text]
    assert len(descriptions) > 900
    for text in descriptions:
        odd = [c for c in text if not c.isascii() and not unicodedata.name(c).startswith("LATIN")]
        assert not odd, text
    bubble = vocabulary.descriptions[vocabulary.names.index("bubble")]
    assert bubble is not None and "film of solution" in bubble


def test_every_class_has_words_for_the_bridge(vocabulary: ImageNetVocabulary) -> None:
    texts, classes = vocabulary.class_texts()

    assert set(classes) == set(range(1000))
    assert len(texts) == len(classes)
    tabby = [t for t, c in zip(texts, classes, strict=True) if c == 281]  # ImageNet 281
    assert tabby[0] == "A photo of a tabby cat."
    # the description lends one sentence: what the thing is, not its variants
    assert len(tabby) == 2 and tabby[1].startswith("A photo of a tabby cat. ")
    assert tabby[1].count(". ") == 1
