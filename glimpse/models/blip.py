"""BLIP captions (``BlipForConditionalGeneration``), from a hub id or a local directory.

On a GPU it runs in fp16, on the CPU in fp32. The visual vector is the vision
model's pooled output, captured from the one vision pass ``generate`` makes, so the
image encoder runs once per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from torch.nn.functional import normalize

from glimpse.models.captioning import Captioner, ImageAnalysis
from glimpse.models.device import DeviceSetting, select_device
from glimpse.models.revision import directory_revision
from glimpse.models.sources import display_name, resolve_pretrained

if TYPE_CHECKING:
    from transformers import BlipForConditionalGeneration, BlipProcessor

# Generation is autoregressive, so batches pay off even on the CPU; the GPU takes more.
_CPU_BATCH = 16
_GPU_BATCH = 64


class BlipCaptioner(Captioner):
    def __init__(
        self,
        source: str,
        *,
        max_new_tokens: int,
        device: DeviceSetting,
        cache_dir: Path | None,
    ) -> None:
        super().__init__(f"blip/{display_name(source)}", device)
        self._source = source
        self._max_new_tokens = max_new_tokens
        self._cache_dir = cache_dir
        self._dtype = torch.float32
        self._model: BlipForConditionalGeneration | None = None
        self._processor: BlipProcessor | None = None

    def _load(self) -> str:
        from transformers import BlipForConditionalGeneration, BlipProcessor

        directory = resolve_pretrained(self._source, self._cache_dir)
        self._device = select_device(self.requested_device)
        # fp16 halves memory and time on a GPU; CPUs have no fast fp16 kernels.
        self._dtype = torch.float16 if self._device.type == "cuda" else torch.float32
        self._processor = BlipProcessor.from_pretrained(directory)
        model = BlipForConditionalGeneration.from_pretrained(directory, dtype=self._dtype)
        # transformers declares `to` with functools.wraps(Module.to), which mypy reads
        # as the unbound signature. Module.to moves the parameters in place.
        model.to(self._device)  # type: ignore[arg-type]
        self._model = model  # from_pretrained returns it in eval mode (dropout off)
        self.visual_dim = int(model.vision_model.config.hidden_size)
        self.batch_size = _GPU_BATCH if self._device.type == "cuda" else _CPU_BATCH
        return directory_revision(directory)

    def _predict_batch(self, images: Sequence[Image.Image]) -> list[ImageAnalysis]:
        assert self._model is not None
        assert self._processor is not None
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        inputs = self._processor(images=rgb, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self._device, self._dtype)
        pooled: list[torch.Tensor] = []

        def keep_pooled(_module: torch.nn.Module, _args: Any, output: Any) -> None:
            pooled.append(output.pooler_output)

        hook = self._model.vision_model.register_forward_hook(keep_pooled)
        try:
            # Greedy: the same image always gets the same caption, so a redelivered
            # message stores what the first delivery did.
            tokens = self._model.generate(
                pixel_values=pixel_values,
                max_new_tokens=self._max_new_tokens,
                do_sample=False,
            )
        finally:
            hook.remove()
        if len(pooled) != 1:
            raise RuntimeError(f"expected one vision pass per generate, saw {len(pooled)}")
        captions = self._processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        visual = normalize(pooled[0].float(), dim=1).cpu().numpy()
        return [
            ImageAnalysis(caption=caption.strip(), labels=[], visual=vector)
            for caption, vector in zip(captions, visual, strict=True)
        ]
