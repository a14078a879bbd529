"""A captioner trained with ``glimpse captioner train``: the labels backbone's visual
vector fed to a small GRU decoder (``caption_decoder``), loaded from an artifact
(``caption_artifact``: a directory, or an artifact id found in the cache or the bucket).

One backbone pass per image gives the visual vector, the ImageNet labels (kept in
``labels``: still searchable and shown) and the decoder's input; the decoded words are
the caption. The model id names the artifact, so each retraining is a model of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from glimpse.models.bridge import ClassSpace
from glimpse.models.caption_artifact import Artifact, ArtifactError, load, locate
from glimpse.models.captioning import Captioner, ImageAnalysis
from glimpse.models.labels import ImageNetLabelCaptioner
from glimpse.models.revision import REVISION_CHARS

if TYPE_CHECKING:
    from glimpse.storage import ObjectStore

MODEL_PREFIX = "trained/"


def model_id_of(source: str) -> str:
    """``trained/<artifact id>``: the id given, or the name of the directory given (an
    artifact's directory is named by its id; where it lies differs between hosts)."""
    return MODEL_PREFIX + Path(source.rstrip("/")).name


class TrainedCaptioner(Captioner):
    def __init__(
        self,
        source: str,
        *,
        backbone: ImageNetLabelCaptioner,
        cache_root: Path,
        store: ObjectStore | None = None,
    ) -> None:
        if not source:
            raise ArtifactError(
                "models.captioner is 'trained' but models.trained_captioner is empty: set "
                "GLIMPSE_MODELS__TRAINED_CAPTIONER to an artifact id or directory"
            )
        super().__init__(model_id_of(source), backbone.requested_device)
        self._source = source
        self._backbone = backbone
        self._cache_root = cache_root
        self._store = store
        self._artifact: Artifact | None = None
        self.visual_dim = backbone.visual_dim

    @property
    def artifact(self) -> Artifact:
        if self._artifact is None:
            raise ArtifactError(f"{self.model_id} is not loaded")
        return self._artifact

    def _load(self) -> str:
        artifact = load(locate(self._source, self._cache_root, self._store))
        trained_on = artifact.config.get("backbone")
        if trained_on != self._backbone.model_id:
            raise ArtifactError(
                f"{artifact.id} was trained on {trained_on}, not {self._backbone.model_id}"
            )
        self._backbone.load()
        self._device = torch.device(self._backbone.device)
        artifact.decoder.to(self._device)
        self._artifact = artifact
        self.batch_size = self._backbone.batch_size
        # Both the decoder and the backbone it reads make the captions.
        both = f"{artifact.revision}:{self._backbone.revision}".encode()
        return hashlib.sha256(both).hexdigest()[:REVISION_CHARS]

    def class_space(self) -> ClassSpace:
        # its visual vectors are the backbone's
        return self._backbone.class_space()

    def _predict_batch(self, images: Sequence[Image.Image]) -> list[ImageAnalysis]:
        artifact = self.artifact
        seen = self._backbone.predict(images)
        vectors = np.stack([analysis.visual for analysis in seen])  # type: ignore[misc]
        said = artifact.decoder.greedy(torch.from_numpy(vectors).to(self._device))
        results = []
        for analysis, ids in zip(seen, said, strict=True):
            # A decoder that says nothing leaves the labels' caption: an image must
            # stay findable by some words.
            caption = artifact.vocab.decode(ids) or analysis.caption
            results.append(ImageAnalysis(caption, analysis.labels, analysis.visual))
        return results
