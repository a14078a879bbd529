"""Caption quality against reference captions: BLEU-4 (sacrebleu, through
``glimpse.models.caption_scores``, as training reports it) and CIDEr-D (the
coco-caption scorer, pycocoevalcap's ``Cider``).

CIDEr-D weighs each n-gram by how rare it is among the references of the whole set, so
a caption scores for saying what is particular to its photo ("espresso", "saucer"),
not for "a photo of". coco-caption tokenises with Stanford's PTB tokenizer, which needs
Java; here captions and references are tokenised by glimpse's own word tokenizer
(lower case, punctuation dropped), the same for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pycocoevalcap.cider.cider import Cider

from glimpse.models.caption_scores import bleu4
from glimpse.models.caption_vocab import tokenize


@dataclass(frozen=True, slots=True)
class CaptionScores:
    bleu4: float  # 0-100, corpus level
    cider: float  # CIDEr-D, mean over images, coco-caption's scale (strong COCO models ~1.1)
    per_image_cider: list[float]


def score_captions(captions: Sequence[str], references: Sequence[Sequence[str]]) -> CaptionScores:
    """``captions[i]`` against ``references[i]``."""
    words = [" ".join(tokenize(caption)) for caption in captions]
    refs = {i: [" ".join(tokenize(r)) for r in rs] for i, rs in enumerate(references)}
    hyps = {i: [w] for i, w in enumerate(words)}
    mean, each = Cider().compute_score(refs, hyps)
    return CaptionScores(bleu4(captions, references), float(mean), [float(x) for x in each])
