"""The trained captioner's words: how captions become token ids and back.

Word-level, lower case, letters and digits (an apostrophe kept inside a word), so
"A red Circle." and "a red circle" are the same caption. Built from the training
captions only; a word seen fewer than ``min_count`` times reads as ``<unk>``, which
the decoder is never allowed to say.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(len(SPECIALS))

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """The words of ``text``, lower case, punctuation dropped."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]  # index = token id; the specials first
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.words[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}")
        object.__setattr__(self, "_ids", {word: i for i, word in enumerate(self.words)})

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Every word of ``captions`` seen at least ``min_count`` times; most frequent
        first, ties alphabetical, so the same captions always give the same ids."""
        counts = Counter(word for caption in captions for word in tokenize(caption))
        kept = sorted(
            (w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls((*SPECIALS, *kept))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, caption: str) -> list[int]:
        """``<bos>`` word ids ``<eos>``; unknown words are ``<unk>``."""
        return [BOS_ID, *(self._ids.get(word, UNK_ID) for word in tokenize(caption)), EOS_ID]

    def decode(self, ids: Sequence[int]) -> str:
        """The words up to the first ``<eos>``, specials left out."""
        words = []
        for i in ids:
            if i == EOS_ID:
                break
            if i >= len(SPECIALS):
                words.append(self.words[i])
        return " ".join(words)

    def to_json(self) -> dict[str, Any]:
        return {"words": list(self.words)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocabulary:
        return cls(tuple(data["words"]))
