"""Training a label head: a stratified held-out split, metrics a person can read, and
clear refusals when the examples cannot make a head."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from glimpse.labels.head import predict
from glimpse.labels.training import Examples, TrainingError, train


def digits(per_label: int) -> Examples:
    """``per_label`` real handwritten digits of each class, as normalised pixel vectors."""
    data = load_digits()
    picked = [i for d in range(10) for i in np.flatnonzero(data.target == d)[:per_label]]
    x = data.data[picked].astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = [str(data.target[i]) for i in picked]
    return Examples(x, labels, [f"digit-{i}" for i in picked])


def test_held_out_metrics_describe_every_label() -> None:
    trained = train(digits(40), "test/visual", holdout=0.2, regularisation=10.0)
    m = trained.metrics

    assert m["examples"] == 400
    assert m["heldout_examples"] == 80 and m["train_examples"] == 320
    assert all(stats["support"] == 8 for stats in m["per_label"].values())  # stratified
    assert m["accuracy"] >= 0.9
    matrix = np.array(m["confusion"]["matrix"])
    assert m["confusion"]["labels"] == [str(d) for d in range(10)]
    assert matrix.sum() == 80
    assert np.trace(matrix) / 80 == pytest.approx(m["accuracy"], abs=1e-4)


def test_the_saved_head_learned_from_every_example() -> None:
    examples = digits(20)
    trained = train(examples, "test/visual")

    right = [r[0][0] for r in predict(trained.head, examples.vectors, top=1)]

    assert trained.head.classes == tuple(str(d) for d in range(10))
    assert trained.head.visual_model == "test/visual"
    assert np.mean(np.array(right) == np.array(examples.labels)) >= 0.98


def test_the_same_seed_trains_the_same_head() -> None:
    a = train(digits(10), "test/visual", seed=4)
    b = train(digits(10), "test/visual", seed=4)

    assert np.array_equal(a.head.coef, b.head.coef)
    assert a.metrics["accuracy"] == b.metrics["accuracy"]


def test_one_label_is_not_a_label_set() -> None:
    examples = digits(5)
    only_sevens = Examples(examples.vectors[:5], ["7"] * 5, examples.sources[:5])

    with pytest.raises(TrainingError, match="at least two labels"):
        train(only_sevens, "test/visual")


def test_a_label_with_one_example_is_named() -> None:
    examples = digits(5)
    labels = list(examples.labels)
    labels[0] = "lonely"

    with pytest.raises(TrainingError, match="lonely"):
        train(Examples(examples.vectors, labels, examples.sources), "test/visual")
