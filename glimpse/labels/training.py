"""Training a label head: a stratified held-out split, scikit-learn's multinomial
logistic regression, metrics on the held-out part, then the head refitted on every
example (with few examples per label, the ones set aside are worth having).

The metrics therefore describe a head trained on ``1 - holdout`` of the examples:
slightly pessimistic for the saved one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from glimpse.labels.head import LabelHead, as_stored, predict

MIN_PER_LABEL = 2  # one to learn from, one to test on


class TrainingError(Exception):
    """Examples a head cannot be trained on; the message says what to add."""


@dataclass(frozen=True)
class Examples:
    vectors: npt.NDArray[np.float32]  # (n, dim) visual vectors
    labels: list[str]
    sources: list[str]  # where each came from (a file, a key), for messages


@dataclass(frozen=True)
class Trained:
    head: LabelHead
    metrics: dict[str, Any]


def fit(vectors: npt.ArrayLike, labels: Sequence[str], regularisation: float) -> LogisticRegression:
    """The classifier (lbfgs: multinomial for more than two classes). Balanced class
    weights: a label with few examples is not drowned by a common one."""
    model = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=5000)
    # One BLAS thread: a head this small gains nothing from more, and on a busy machine
    # they spin against each other (250 digits: 37 s with the default, 0.5 s with one).
    with threadpool_limits(1):
        model.fit(as_stored(vectors), list(labels))
    return model


def head_of(model: LogisticRegression, visual_model: str) -> LabelHead:
    """The fitted classifier as a head (two classes: scikit-learn keeps one row of
    coefficients for the second class; the softmax of (-z/2, z/2) is the same sigmoid)."""
    classes = tuple(str(c) for c in model.classes_)
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if len(classes) == 2 and coef.shape[0] == 1:
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return LabelHead(classes, coef, intercept, visual_model)


def check(examples: Examples) -> None:
    counts = Counter(examples.labels)
    if len(counts) < 2:
        raise TrainingError(f"a label set needs at least two labels; found {sorted(counts)}")
    few = sorted(label for label, n in counts.items() if n < MIN_PER_LABEL)
    if few:
        raise TrainingError(
            f"each label needs at least {MIN_PER_LABEL} examples (one is held out to test "
            f"it); too few for: {', '.join(few)}"
        )


def train(
    examples: Examples,
    visual_model: str,
    *,
    holdout: float = 0.2,
    regularisation: float = 100.0,
    seed: int = 0,
) -> Trained:
    """Train and measure a head on ``examples`` (vectors of ``visual_model``)."""
    check(examples)
    began = time.perf_counter()
    labels = np.array(examples.labels)
    classes = sorted(set(examples.labels))
    # at least one held-out example per label, or the split cannot be stratified
    test_size = max(len(classes), round(holdout * len(labels)))
    if len(labels) - test_size < len(classes):
        raise TrainingError(
            f"{len(labels)} examples are too few to hold out {test_size} and still learn "
            f"every label: add examples"
        )
    train_x, test_x, train_y, test_y = train_test_split(
        examples.vectors, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    measured = head_of(fit(train_x, train_y, regularisation), visual_model)
    predicted = [p[0][0] for p in predict(measured, test_x, top=1)]
    final = head_of(fit(examples.vectors, examples.labels, regularisation), visual_model)
    metrics = _metrics(classes, list(test_y), predicted)
    metrics |= {
        "examples": len(labels),
        "train_examples": len(train_y),
        "heldout_examples": len(test_y),
        "examples_per_label": dict(sorted(Counter(examples.labels).items())),
        "regularisation": regularisation,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - began, 3),
    }
    return Trained(final, metrics)


def _metrics(classes: list[str], truth: list[str], predicted: list[str]) -> dict[str, Any]:
    precision, recall, _, support = precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    matrix = confusion_matrix(truth, predicted, labels=classes)
    return {
        "accuracy": round(float(np.mean(np.array(truth) == np.array(predicted))), 4),
        "per_label": {
            label: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "support": int(s),
            }
            for label, p, r, s in zip(classes, precision, recall, support, strict=True)
        },
        # rows: true label, columns: predicted, both in ``classes`` order
        "confusion": {"labels": classes, "matrix": matrix.tolist()},
    }
