"""A small captioning set the tests draw themselves: one coloured shape on white, with
the several plain phrasings people would write for it.

Real images (PIL-drawn, then read by the real backbone) and real captions, so training
on them exercises everything training on a shop's alt texts does; small enough to
train on a CPU in seconds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 50),
           "yellow": (240, 210, 20)}  # fmt: skip
SHAPES = ("circle", "square", "triangle")
PHRASINGS = (
    "a {colour} {shape} on a white background",
    "a picture of a {colour} {shape}",
    "one {colour} {shape} drawn on white",
    "a simple {colour} {shape} in the middle",
)
SIZE = 256


def draw(colour: str, shape: str, variant: int) -> Image.Image:
    """``shape`` in ``colour`` on white; ``variant`` moves and sizes it a little."""
    rng = random.Random(f"{colour}/{shape}/{variant}")
    image = Image.new("RGB", (SIZE, SIZE), "white")
    pen = ImageDraw.Draw(image)
    radius = rng.randint(55, 85)
    cx, cy = SIZE // 2 + rng.randint(-20, 20), SIZE // 2 + rng.randint(-20, 20)
    fill = COLOURS[colour]
    if shape == "circle":
        pen.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    elif shape == "square":
        pen.rectangle((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    else:
        pen.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)],
                    fill=fill)  # fmt: skip
    return image


def captions(colour: str, shape: str) -> list[str]:
    return [p.format(colour=colour, shape=shape) for p in PHRASINGS]


def shape_set(variants: int) -> tuple[dict[str, Image.Image], dict[str, list[str]]]:
    """(images by name, captions by name): every colour and shape, ``variants`` each."""
    images, texts = {}, {}
    for colour in COLOURS:
        for shape in SHAPES:
            for variant in range(variants):
                name = f"{colour}-{shape}-{variant}.png"
                images[name] = draw(colour, shape, variant)
                texts[name] = captions(colour, shape)
    return images, texts


def write_pairs(folder: Path, variants: int) -> Path:
    """The set as a user hands it to `glimpse captioner train`: PNG files under
    ``folder/images`` and ``folder/pairs.csv`` (image,caption; one row per caption)."""
    lines = ["image,caption"]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for colour in COLOURS:
        for shape in SHAPES:
            for variant in range(variants):
                name = f"images/{colour}-{shape}-{variant}.png"
                draw(colour, shape, variant).save(folder / name)
                lines += [f"{name},{caption}" for caption in captions(colour, shape)]
    (folder / "pairs.csv").write_text("\n".join(lines) + "\n")
    return folder / "pairs.csv"


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """A GRU this small gains nothing from a second thread, and on a busy machine OpenMP
    threads spin-waiting for each other made training 17x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
