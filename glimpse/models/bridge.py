"""A bridge from the text model's space into the visual model's, so typed words rank the
images themselves when no joint image-text model is active (the offline default).

The labels captioner's classifier scores an image's pooled features ``f`` with one
weight row per ImageNet class: ``w_c · f`` is class c's logit. Each class also has
words (its name and the first sentence of its description), so the text model gives
it a text vector ``t_c``. A ridge regression fitted on those pairs (``t_c → w_c``,
rows centred and normalised) maps any query's text vector to a direction in feature
space; ranking the stored visual vectors by cosine with that direction ranks images by
how much they look like what the words say, over every class at once, not only by the
three labels their caption kept. Measured on bench/quality.py's set (bench/RESULTS.md).

Fitting embeds 1,976 short texts (15-45 s measured on 2 busy CPU cores); the matrix is
cached per pair of model revisions under ``cache_dir/bridges``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]

#: Ridge strength. On bench/quality.py's set 3-30 gave the same R@5 fused with the
#: caption vectors; much less over-fits the class names, much more blurs the classes.
DEFAULT_RIDGE = 10.0
#: Bumped whenever the class texts or the fitting change: old cached matrices then miss.
_VERSION = 1


@dataclass(frozen=True, slots=True)
class ClassSpace:
    """A classifier's classes: words for each, and its weight row in feature space."""

    texts: tuple[str, ...]  # words for class i (one or more texts per class allowed)
    classes: tuple[int, ...]  # texts[j] describes class classes[j]
    weights: Matrix  # (classes, feature dim): one row per class


def fit(text_vectors: Matrix, targets: Matrix, ridge: float = DEFAULT_RIDGE) -> Matrix:
    """Least squares ``text_vectors @ M ≈ targets`` with an L2 penalty: (text dim, feature dim)."""
    t = text_vectors.astype(np.float64)
    gram = t.T @ t + ridge * np.eye(t.shape[1])
    return np.linalg.solve(gram, t.T @ targets.astype(np.float64)).astype(np.float32)


def class_directions(weights: Matrix) -> Matrix:
    """Each class's weight row less the mean row, unit length: what tells it apart."""
    centred = weights - weights.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    directions: Matrix = (centred / np.maximum(norms, 1e-12)).astype(np.float32)
    return directions


@dataclass(frozen=True, slots=True)
class TextToVisual:
    """Maps the vectors of one text model into one visual model's space."""

    text_model: str
    visual_model: str
    matrix: Matrix  # (text dim, visual dim)

    def to_visual(self, text_vector: Matrix) -> Matrix:
        """The direction in visual space the words point to, L2-normalised."""
        mapped = text_vector.astype(np.float32) @ self.matrix
        return (mapped / max(float(np.linalg.norm(mapped)), 1e-12)).astype(np.float32)


def build(
    space: ClassSpace,
    embed: Callable[[Sequence[str]], Matrix],
    text_model: str,
    visual_model: str,
    ridge: float = DEFAULT_RIDGE,
) -> TextToVisual:
    """Fit the bridge: the class texts through ``embed``, onto their class directions."""
    directions = class_directions(space.weights)
    targets = directions[np.asarray(space.classes)]
    matrix = fit(embed(list(space.texts)), targets, ridge)
    return TextToVisual(text_model, visual_model, matrix)


def cache_path(
    cache_dir: Path, text_revision: str, visual_revision: str, ridge: float = DEFAULT_RIDGE
) -> Path:
    """Where the bridge between these two model revisions is kept."""
    key = f"{_VERSION}|{text_revision}|{visual_revision}|{ridge!r}".encode()
    return cache_dir / "bridges" / f"{hashlib.sha256(key).hexdigest()[:32]}.npy"


def load_or_build(
    path: Path,
    build_it: Callable[[], TextToVisual],
    text_model: str,
    visual_model: str,
) -> TextToVisual:
    """The cached bridge at ``path``, else ``build_it()`` saved there (atomically: two
    processes fitting at once both end with a whole file)."""
    if path.is_file():
        try:
            return TextToVisual(text_model, visual_model, np.load(path, allow_pickle=False))
        except (OSError, ValueError):
            log.warning("the cached bridge %s is unreadable; fitting it again", path)
    bridge = build_it()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    with partial.open("wb") as out:
        np.save(out, bridge.matrix, allow_pickle=False)
    partial.replace(path)
    return bridge
