"""Test material for the model layer: real photos, and a tiny BLIP checkpoint built offline.

Photos come from scikit-image's wheel (a dev dependency), which ships a few freely
licensed ones: chelsea (a tabby cat, CC0), coffee (a cup of espresso, CC0), rocket
(a Falcon 9 launch, public domain), astronaut (NASA, public domain),
motorcycle_left (a motorbike). They are read with Pillow from the installed package
without importing scikit-image (and its SciPy) at all.

The BLIP checkpoint is randomly initialised and saved with ``save_pretrained`` like a
real one (config, safetensors weights, tokenizer, image processor), so tests load it
through the same ``load_captioner`` path as ``Salesforce/blip-image-captioning-base``.
Its captions are word salad: tests check shapes, determinism and batching, not meaning.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import torch
from PIL import Image

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
# Whole words only, so every generated token decodes to one word.
_WORDS = (
    "a an the photo picture of with on in and at near cat dog bird cup coffee table "
    "rocket sky sea tree man woman child red blue green white black small large two"
)
_SIZE = 32  # pixels per side; 4x4 patches of 8
_HIDDEN = 32
# Random weights drawn wider than BERT's 0.02, so different images yield different
# captions and batching bugs (mixed-up rows) cannot hide behind identical outputs.
_INIT_RANGE = 0.5
# Every tiny transformer here (BLIP's and CLIP's vision and text towers): two small layers.
_TINY_LAYERS = {
    "hidden_size": _HIDDEN,
    "intermediate_size": 2 * _HIDDEN,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
}


# scikit-image's sample photos (public domain / freely licensed, shipped in its wheel)
PHOTOS = {
    "cat": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "astronaut": "astronaut.png",
    "motorcycle": "motorcycle_left.png",
    "horse": "horse.png",
}


def samples_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise RuntimeError("scikit-image (a dev dependency) is not installed")
    return Path(spec.origin).parent / "data"


def photo(name: str) -> Image.Image:
    """One of ``PHOTOS``, decoded, as RGB."""
    with Image.open(samples_dir() / PHOTOS[name]) as image:
        return image.convert("RGB")


def build_tiny_blip(directory: Path, seed: int = 0) -> Path:
    """Write the checkpoint into ``directory`` (created) and return it."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    vocab = {token: index for index, token in enumerate(_SPECIAL + _WORDS.split())}
    # BLIP's decoder starts from [DEC], its bos token, and stops at [SEP].
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    image_processor = BlipImageProcessor(size={"height": _SIZE, "width": _SIZE})
    config = BlipConfig(
        vision_config={
            **_TINY_LAYERS,
            "image_size": _SIZE,
            "patch_size": 8,
            "initializer_range": _INIT_RANGE,
        },
        text_config={
            "vocab_size": len(vocab),
            **_TINY_LAYERS,
            "max_position_embeddings": 64,
            "initializer_range": _INIT_RANGE,
            "pad_token_id": vocab["[PAD]"],
            "bos_token_id": vocab["[DEC]"],
            "eos_token_id": vocab["[SEP]"],
            "sep_token_id": vocab["[SEP]"],
        },
        projection_dim=_HIDDEN,
        image_text_hidden_size=_HIDDEN,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)  # type: ignore[no-untyped-call]
    processor.save_pretrained(directory)
    return directory


def build_tiny_clip(
    directory: Path, seed: int = 0, projection_dim: int = 16, full_size: bool = False
) -> Path:
    """A randomly initialised CLIP (config, weights, BPE tokenizer, image processor)
    saved like a real checkpoint, for the joint image-text role. Its vectors mean
    nothing: tests check shapes, normalisation, determinism and the plumbing.
    ``full_size``: towers shaped like ViT-B/32's (CLIPConfig's defaults), for timing
    (bench/search.py); weights still random."""
    import json

    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    # Without merges CLIP's BPE spells every word letter by letter: each letter, and
    # each letter ending a word ("t</w>"), is a token of its own.
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    tokens = ["<|startoftext|>", "<|endoftext|>"] + list(letters) + [c + "</w>" for c in letters]
    vocab = {token: index for index, token in enumerate(tokens)}
    files = directory / "tokenizer-files"
    files.mkdir(parents=True, exist_ok=True)
    (files / "vocab.json").write_text(json.dumps(vocab))
    (files / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(files / "vocab.json"), str(files / "merges.txt"))
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": _SIZE}, crop_size={"height": _SIZE, "width": _SIZE}
    )
    layers = {} if full_size else _TINY_LAYERS
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            **layers,
            "max_position_embeddings": 77 if full_size else 32,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={**layers, "image_size": _SIZE, "patch_size": 8},
        projection_dim=projection_dim,
        initializer_factor=_INIT_RANGE / 0.02,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    model.save_pretrained(directory)
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)  # type: ignore[no-untyped-call]
    processor.save_pretrained(directory)
    shutil.rmtree(files)  # the saved tokenizer carries its vocabulary itself
    return directory
