"""Captioners: images in, a searchable caption, label scores and a visual vector out.

captioner = load_captioner(settings.models)   # cheap: nothing read yet
captioner.load()                              # at worker start, before ready
[analysis] = captioner.predict([thumbnail])
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image

from glimpse.config import ModelSettings
from glimpse.models.base import InferenceModel

if TYPE_CHECKING:
    from glimpse.models.bridge import ClassSpace
    from glimpse.storage import ObjectStore

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class ImageAnalysis:
    # What a person would type to find the image; full-text and text-vector search read it.
    caption: str
    # (label, probability), best first; empty for captioners without a label set (BLIP).
    # A low top probability marks a weak caption (textures, documents, sky).
    labels: list[tuple[str, float]]
    # L2-normalised visual vector for image-to-image similarity, or None.
    visual: Vector | None


class Captioner(InferenceModel):
    """Turns images into ``ImageAnalysis``; subclasses implement ``_predict_batch``."""

    # Length of ``ImageAnalysis.visual``; None when the captioner has no visual vector.
    visual_dim: int | None = None
    # Images per forward pass; subclasses set it in _load, for the device they run on.
    batch_size: int = 1

    def predict(self, images: Sequence[Image.Image]) -> list[ImageAnalysis]:
        """One result per image, in order. Raises ``ModelNotLoadedError`` before ``load()``."""
        with self._running(items=len(images)):
            results: list[ImageAnalysis] = []
            for start in range(0, len(images), self.batch_size):
                results.extend(self._predict_batch(images[start : start + self.batch_size]))
            return results

    def class_space(self) -> ClassSpace | None:
        """The classifier behind the visual vectors, with words for its classes (loaded);
        None for a captioner without one (BLIP). It bridges text into visual space."""
        return None

    @abstractmethod
    def _predict_batch(self, images: Sequence[Image.Image]) -> list[ImageAnalysis]:
        """One forward pass over at most ``batch_size`` images (called loaded, under the lock)."""


def load_captioner(
    models: ModelSettings, home: Path | None = None, store: ObjectStore | None = None
) -> Captioner:
    """The captioner ``models.captioner`` names, not loaded yet: call ``.load()``.

    A trained captioner's artifact is looked up under ``models.cache_dir``, else
    ``home``'s ``models/`` (``Settings.home``), and fetched from ``store`` (the bucket)
    when it is not there yet."""
    # Imported here so a labels-only worker never imports transformers (~4 s).
    if models.captioner == "blip":
        from glimpse.models.blip import BlipCaptioner

        return BlipCaptioner(
            models.blip_model,
            max_new_tokens=models.blip_max_new_tokens,
            device=models.device,
            cache_dir=models.cache_dir,
        )
    from glimpse.models.imagenet import CaptionStyle
    from glimpse.models.labels import ImageNetLabelCaptioner

    labels = ImageNetLabelCaptioner(
        top_k=models.labels_top_k,
        min_probability=models.labels_min_probability,
        device=models.device,
        style=CaptionStyle(
            described_min_probability=models.labels_described_min_probability,
            described_labels=models.labels_described,
            description_chars=models.labels_description_chars or None,
        ),
    )
    if models.captioner == "trained":
        from glimpse.models.trained import TrainedCaptioner
        from glimpse.models.whisper_assets import resolve_cache_root

        return TrainedCaptioner(
            models.trained_captioner,
            backbone=labels,
            cache_root=resolve_cache_root(models, home),
            store=store,
        )
    return labels
