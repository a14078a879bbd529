"""Which of Tesseract's words to believe.

Tesseract reads something into almost any photo of leaves or gravel ("SSS", "ae",
"\\\\<"), mostly at low confidence. A word is kept when Tesseract is confident and a
dictionary knows it, or when Tesseract is sure (names, brands, numbers of two digits or
more). An image whose kept words are all short, or one unsure word, keeps none: "ge ay"
on a photo of grass is noise, a lone "EXIT" read at 96 is a sign.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Letters (any script), digits, and apostrophes or hyphens inside a word.
_WORD = re.compile(r"^[^\W_]+(?:['’-][^\W_]+)*$")  # noqa: RUF001
_EDGES = "\"'‘’“”()[]{}<>.,;:!?*•·|/\\-–—_=+~`^"  # noqa: RUF001 (typographic quotes are meant)


@dataclass(frozen=True, slots=True)
class WordRules:
    min_confidence: float = 70.0  # a dictionary word
    sure_confidence: float = 90.0  # any other word, number or name
    min_letters: int = 2
    # kept words need one of at least this many characters among them ("ge ay" on a
    # photo of grass is noise), and a lone kept word needs sure confidence
    long_word_chars: int = 3


class Dictionary:
    """Lower-cased words from a word list; empty when the file is missing."""

    def __init__(self, words: Iterable[str]) -> None:
        self._words = frozenset(word.strip().lower() for word in words if word.strip())

    @classmethod
    def load(cls, path: Path) -> Dictionary:
        if not path.is_file():
            return cls(())
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        # "cat's" lines add nothing once "cat" is known
        return cls(line for line in lines if not line.endswith("'s"))

    def __len__(self) -> int:
        return len(self._words)

    def knows(self, word: str) -> bool:
        lower = word.lower()
        if lower in self._words:
            return True
        # possessives and plurals the list leaves out; hyphenated words by their parts
        if lower.endswith(("'s", "’s")) and lower[:-2] in self._words:  # noqa: RUF001
            return True
        parts = re.split(r"['’-]", lower)  # noqa: RUF001
        return len(parts) > 1 and all(part in self._words for part in parts)


def clean(word: str) -> str:
    """The word without the punctuation around it ("(Tuesday," -> "Tuesday")."""
    return word.strip().strip(_EDGES)


def keep(
    read: Iterable[tuple[str, float]], dictionary: Dictionary, rules: WordRules
) -> list[tuple[str, float]]:
    """(word, confidence) in reading order -> the words worth searching for, in order."""
    kept = []
    for raw, confidence in read:
        word = clean(raw)
        if _believable(word, confidence, dictionary, rules):
            kept.append((word, confidence))
    if not any(len(word) >= rules.long_word_chars for word, _ in kept):
        return []
    if len(kept) == 1 and kept[0][1] < rules.sure_confidence:
        return []
    return kept


def _believable(word: str, confidence: float, dictionary: Dictionary, rules: WordRules) -> bool:
    if len(word) < rules.min_letters or not _WORD.match(word):
        return False
    if word.isdigit():
        return confidence >= rules.sure_confidence
    if confidence >= rules.min_confidence and dictionary.knows(word):
        return True
    letters = sum(ch.isalpha() for ch in word)
    # a name or a model number: sure, mostly letters, not one letter repeated ("SSS")
    return (
        confidence >= rules.sure_confidence
        and len(word) >= 3
        and letters >= len(word) / 2
        and len(set(word.lower())) > 1
    )
