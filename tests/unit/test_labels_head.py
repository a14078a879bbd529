"""A label head trained by scikit-learn predicts what scikit-learn predicts, from plain
arrays; saved and loaded, it predicts bit for bit the same."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.datasets import load_digits

from glimpse.labels import artifact
from glimpse.labels.artifact import Artifact, ArtifactError
from glimpse.labels.head import LabelHead, as_stored, predict, probabilities
from glimpse.labels.training import fit, head_of


def digit_vectors(n: int = 600) -> tuple[np.ndarray, list[str]]:
    """Real handwritten digits (8x8 pixels) as L2-normalised 64-d vectors."""
    digits = load_digits()
    x = digits.data[:n].astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), [str(t) for t in digits.target[:n]]


def test_the_head_gives_scikit_learns_probabilities() -> None:
    x, y = digit_vectors()
    model = fit(x, y, regularisation=10.0)
    head = head_of(model, "test/visual")

    ours = probabilities(head, x)
    theirs = model.predict_proba(as_stored(x))

    assert head.classes == tuple(str(c) for c in model.classes_)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_two_labels_become_a_two_row_head_with_the_same_answers() -> None:
    x, y = digit_vectors()
    keep = [i for i, label in enumerate(y) if label in {"0", "1"}]
    model = fit(x[keep], [y[i] for i in keep], regularisation=10.0)
    head = head_of(model, "test/visual")

    assert head.coef.shape == (2, x.shape[1])
    np.testing.assert_allclose(
        probabilities(head, x[keep]), model.predict_proba(as_stored(x[keep]))
    )


def test_predictions_come_best_first_with_their_confidence() -> None:
    x, y = digit_vectors()
    head = head_of(fit(x, y, regularisation=10.0), "test/visual")

    ranked = predict(head, x[:50], top=3)

    assert all(len(r) == 3 for r in ranked)
    assert all(r[0][1] >= r[1][1] >= r[2][1] for r in ranked)
    assert sum(r[0][0] == label for r, label in zip(ranked, y[:50], strict=True)) >= 48


def test_a_vector_rounds_as_postgres_stores_it() -> None:
    """Tagged from the float32 vector in hand or from the stored halfvec: same answer."""
    x, y = digit_vectors()
    head = head_of(fit(x, y, regularisation=10.0), "test/visual")
    stored = x.astype(np.float16)

    assert np.array_equal(probabilities(head, x), probabilities(head, stored))


def test_vectors_of_another_dimension_are_refused() -> None:
    head = LabelHead(("a", "b"), np.zeros((2, 4)), np.zeros(2), "test/visual")

    with pytest.raises(ValueError, match="dimensions"):
        predict(head, np.zeros((1, 5)))


def test_a_saved_head_reloads_and_predicts_bit_identically() -> None:
    x, y = digit_vectors()
    head = head_of(fit(x, y, regularisation=10.0), "test/visual")
    saved = Artifact("digits", 3, head, {"accuracy": 0.97})

    data = artifact.to_bytes(saved)
    loaded = artifact.from_bytes(data)

    assert (loaded.name, loaded.version, loaded.metrics) == ("digits", 3, {"accuracy": 0.97})
    assert loaded.head.classes == head.classes
    assert loaded.head.visual_model == "test/visual"
    assert np.array_equal(loaded.head.coef, head.coef)
    assert probabilities(loaded.head, x).tobytes() == probabilities(head, x).tobytes()
    assert artifact.to_bytes(loaded) == data  # the format is stable: same bytes again


def test_an_artifact_holds_no_pickle_and_says_its_format() -> None:
    head = LabelHead(("a", "b"), np.eye(2), np.zeros(2), "test/visual")
    data = artifact.to_bytes(Artifact("s", 1, head, {}))

    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["coef", "intercept", "meta"]
        assert arrays["coef"].dtype == np.float64
    with pytest.raises(ArtifactError, match="not a label head"):
        artifact.from_bytes(b"PK\x03\x04 not really")
