"""BLEU-4 of captions against people's reference captions, by sacrebleu (the reference
implementation of BLEU), so numbers here compare with those published elsewhere.

Corpus-level: n-gram matches are summed over every caption before the precision is
taken, as BLEU is defined; lower-cased, sacrebleu's standard ``13a`` tokenisation.
Scores are 0-100.
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics.bleu import BLEU


def bleu4(captions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """BLEU-4 of ``captions[i]`` against ``references[i]`` (any number of references
    per caption, at least one)."""
    if len(captions) != len(references) or not captions:
        raise ValueError("one list of references per caption, and at least one caption")
    if any(not refs for refs in references):
        raise ValueError("every caption needs at least one reference")
    deepest = max(len(refs) for refs in references)
    # sacrebleu takes reference *streams* (the i-th reference of every caption); a
    # caption with fewer references pads its streams with None, which it skips.
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(deepest)]
    metric = BLEU(lowercase=True, max_ngram_order=4)
    return float(metric.corpus_score(list(captions), streams).score)  # type: ignore[arg-type]
