"""A label head: a multinomial logistic regression over visual vectors, as plain arrays.

Prediction is our own few lines of numpy, not scikit-learn's object: what is saved is
exactly what predicts (no pickle), the caption worker needs no scikit-learn, and a
reloaded head gives bit-identical answers. Vectors are rounded to half precision
first, as Postgres stores them (``halfvec``), so an image tagged from the vector in the
caption worker's hand and one tagged later from its stored vector get the same answer.

    head = LabelHead(classes, coef, intercept, visual_model)
    predict(head, vectors)   # [[("7", 0.93), ("1", 0.04), ...], ...] best first
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Prediction = list[tuple[str, float]]


@dataclass(frozen=True)
class LabelHead:
    classes: tuple[str, ...]
    coef: npt.NDArray[np.float64]  # (classes, dim)
    intercept: npt.NDArray[np.float64]  # (classes,)
    visual_model: str  # the model whose visual vectors it reads

    def __post_init__(self) -> None:
        if self.coef.shape != (len(self.classes), self.coef.shape[1]):
            raise ValueError(f"coef {self.coef.shape} does not fit {len(self.classes)} classes")
        if self.intercept.shape != (len(self.classes),):
            raise ValueError(f"intercept {self.intercept.shape} does not fit the classes")

    @property
    def dim(self) -> int:
        return int(self.coef.shape[1])


def as_stored(vectors: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Vectors as Postgres keeps them (half precision), widened for the arithmetic."""
    return np.asarray(vectors, dtype=np.float32).astype(np.float16).astype(np.float64)


def probabilities(head: LabelHead, vectors: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(n, classes) class probabilities of each vector (rows sum to 1)."""
    x = np.atleast_2d(as_stored(vectors))
    if x.shape[1] != head.dim:
        raise ValueError(f"vectors have {x.shape[1]} dimensions, the head reads {head.dim}")
    logits = x @ head.coef.T + head.intercept
    logits -= logits.max(axis=1, keepdims=True)  # softmax without overflow
    exp = np.exp(logits)
    result: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return result


def predict(head: LabelHead, vectors: npt.ArrayLike, top: int | None = None) -> list[Prediction]:
    """For each vector its labels with their confidence, best first (``top`` of them)."""
    probs = probabilities(head, vectors)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [
        [(head.classes[j], float(row[j])) for j in ranked]
        for row, ranked in zip(probs, order, strict=True)
    ]
