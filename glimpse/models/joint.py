"""A joint image-text model (CLIP or SigLIP through transformers): one vector space for both.

Images and text land in the same space, so a typed query is compared with the images
themselves rather than with words a captioner chose. The caption stage computes the
image vectors from the same decoded thumbnail it captions; the API computes the text
vector of each query. Loaded from a hub id (``glimpse models fetch``) or a local
directory saved with ``save_pretrained``; ``AutoModel`` picks ``CLIPModel`` or
``SiglipModel`` from the checkpoint's config.

joint = JointModel("openai/clip-vit-base-patch32", device="auto", cache_dir=None)
joint.load()
images = joint.embed_images([thumbnail])      # (1, dim), L2-normalised
queries = joint.embed(["a red bicycle"])  # (1, dim), L2-normalised
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torch.nn.functional import normalize

from glimpse.config import ModelSettings
from glimpse.models.base import InferenceModel, ModelNotLoadedError
from glimpse.models.device import DeviceSetting, select_device
from glimpse.models.revision import directory_revision
from glimpse.models.sources import display_name, resolve_pretrained

if TYPE_CHECKING:
    from transformers import ProcessorMixin

Matrix = npt.NDArray[np.float32]

# Images per forward pass: a ViT-B/32 takes ~0.1 s per image on 2 CPU cores, and
# batches beyond a few only raise peak memory there; a GPU wants many.
_CPU_BATCH = 4
_GPU_BATCH = 64
_TEXT_BATCH = 32
# Checkpoints whose model has get_image_features/get_text_features into one space.
JOINT_MODEL_TYPES = frozenset({"clip", "siglip", "siglip2"})


def joint_model_id(source: str) -> str:
    return f"joint/{display_name(source)}"


def load_joint_model(models: ModelSettings) -> JointModel | None:
    """The joint model ``models.joint_model`` names, not loaded yet; None when it is off."""
    if not models.joint_model:
        return None
    return JointModel(models.joint_model, device=models.device, cache_dir=models.cache_dir)


class JointModel(InferenceModel):
    def __init__(self, source: str, *, device: DeviceSetting, cache_dir: Path | None) -> None:
        super().__init__(joint_model_id(source), device)
        self._source = source
        self._cache_dir = cache_dir
        # CLIPModel or SiglipModel: the feature methods are theirs, not PreTrainedModel's.
        self._model: Any = None
        self._processor: ProcessorMixin | None = None
        self._dim: int | None = None
        # SigLIP was trained on text padded to its full length; CLIP on the longest.
        self._text_padding: str | bool = True
        self._max_length: int | None = None
        self.batch_size = _CPU_BATCH

    @property
    def dim(self) -> int:
        """Width of the shared space; known once loaded."""
        if self._dim is None:
            raise ModelNotLoadedError(self.model_id)
        return self._dim

    def _load(self) -> str:
        from transformers import AutoConfig, AutoModel, AutoProcessor

        directory = resolve_pretrained(self._source, self._cache_dir)
        kind = AutoConfig.from_pretrained(directory).model_type
        if kind not in JOINT_MODEL_TYPES:
            raise ValueError(
                f"{self._source} is a {kind} checkpoint, not a joint image-text model "
                f"({', '.join(sorted(JOINT_MODEL_TYPES))})"
            )
        self._device = select_device(self.requested_device)
        dtype = torch.float16 if self._device.type == "cuda" else torch.float32
        model = AutoModel.from_pretrained(directory, dtype=dtype)
        model.to(self._device)  # in place
        self._model = model
        self._processor = AutoProcessor.from_pretrained(directory)  # type: ignore[no-untyped-call]
        config: Any = model.config
        self._text_padding = "max_length" if kind.startswith("siglip") else True
        self._max_length = int(config.text_config.max_position_embeddings)
        self.batch_size = _GPU_BATCH if self._device.type == "cuda" else _CPU_BATCH
        # The width of the shared space: measured, not read from a config field that
        # CLIP (projection_dim) and SigLIP (the towers' hidden size) name differently.
        with torch.inference_mode():
            self._dim = int(self._text_features(["a photo"]).shape[1])
        return directory_revision(directory)

    def embed_images(self, images: Sequence[Image.Image]) -> Matrix:
        """One L2-normalised row per image, in order."""
        with self._running(items=len(images)):
            rows = [
                self._image_features(images[start : start + self.batch_size])
                for start in range(0, len(images), self.batch_size)
            ]
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)

    def embed(self, texts: Sequence[str]) -> Matrix:
        """One L2-normalised row per text, in order: the query side, named as
        ``TextEmbedder.embed`` so either serves queries. The text tower reads at most its
        position limit (77 tokens for CLIP, 64 for SigLIP)."""
        with self._running(items=len(texts)):
            rows = [
                self._text_features(list(texts[start : start + _TEXT_BATCH]))
                for start in range(0, len(texts), _TEXT_BATCH)
            ]
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)

    def _image_features(self, images: Sequence[Image.Image]) -> Matrix:
        assert self._model is not None and self._processor is not None
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        inputs = self._processor(images=rgb, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self._device, self._model.dtype)
        return _normalised(self._model.get_image_features(pixel_values=pixels))

    def _text_features(self, texts: list[str]) -> Matrix:
        assert self._model is not None and self._processor is not None
        inputs = self._processor(
            text=texts,
            padding=self._text_padding,
            truncation=True,
            max_length=self._max_length,
            return_tensors="pt",
        )
        tensors = {k: v.to(self._device) for k, v in inputs.items()}
        return _normalised(self._model.get_text_features(**tensors))


def _normalised(output: Any) -> Matrix:
    # transformers 5 answers a model output whose pooler_output is the projected
    # embedding; older releases answered the tensor itself.
    features = output if isinstance(output, torch.Tensor) else output.pooler_output
    return normalize(features.float(), dim=-1).cpu().numpy().astype(np.float32)
