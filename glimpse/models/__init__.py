"""The model layer: captioners (images to caption, labels, visual vector) and text embedders.

Constructing a model reads nothing; ``load()`` reads the weights once, at worker start.
Every result is stored with ``model_id`` and ``revision`` so vectors of two models are
never compared.
"""

from glimpse.models.base import InferenceModel, ModelNotLoadedError
from glimpse.models.captioning import Captioner, ImageAnalysis, load_captioner
from glimpse.models.text import TextEmbedder, load_text_embedder, ranking_agreement

__all__ = [
    "Captioner",
    "ImageAnalysis",
    "InferenceModel",
    "ModelNotLoadedError",
    "TextEmbedder",
    "load_captioner",
    "load_text_embedder",
    "ranking_agreement",
]
