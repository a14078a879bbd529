"""Images with real text in them, rendered with Pillow: the OCR tests and bench/quality.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

PAGE_TEXT = (
    "The harbour committee met on Tuesday to discuss the new lighthouse. Fishermen asked "
    "for brighter lights on the northern pier, and the mayor promised a written report "
    "before the winter storms arrive."
)
SCREEN_LINES = (
    "Invoice for October is attached",
    "Meeting moved to Thursday afternoon",
    "Your parcel has been delivered",
    "Quarterly budget review and forecast",
)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if _DEJAVU.is_file():
        return ImageFont.truetype(str(_DEJAVU), size)
    return ImageFont.load_default(size=size)


def page(width: int = 1200, size: int = 40) -> Image.Image:
    """A printed page: dark words wrapped on light paper, slightly soft like a photo."""
    image = Image.new("RGB", (width, int(width * 1.3)), (245, 242, 235))
    draw = ImageDraw.Draw(image)
    face = font(size)
    line, y = "", size * 2
    for word in PAGE_TEXT.split():
        if draw.textlength(f"{line} {word}", font=face) > width - 4 * size and line:
            draw.text((size * 2, y), line, fill=(25, 25, 25), font=face)
            line, y = word, y + int(size * 1.5)
        else:
            line = f"{line} {word}".strip()
    draw.text((size * 2, y), line, fill=(25, 25, 25), font=face)
    return image.filter(ImageFilter.GaussianBlur(0.8))


def screenshot(width: int = 1920, height: int = 1080) -> Image.Image:
    """A mail client at full HD: text far too small to read in a 512-px thumbnail."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 60), fill=(40, 60, 120))
    draw.text((20, 15), "Inbox", fill="white", font=font(28))
    for i, line in enumerate(SCREEN_LINES * 3):
        draw.text((40, 100 + 55 * i), line, fill=(30, 30, 30), font=font(22))
    return image


def sign(text: str = "HARBOUR", background: Image.Image | None = None) -> Image.Image:
    """White capitals on a green board in the middle of a scene."""
    scene = background.copy() if background is not None else smooth_photo()
    width, height = scene.size
    draw = ImageDraw.Draw(scene)
    face = font(height // 8)
    box = draw.textbbox((0, 0), text, font=face)
    left, top = (width - (box[2] - box[0])) // 2, (height - (box[3] - box[1])) // 2
    pad = height // 20
    draw.rectangle((left - pad, top - pad, left + box[2] + pad, top + box[3] + pad),
                   fill=(20, 90, 40))  # fmt: skip
    draw.text((left, top - box[1]), text, fill="white", font=face)
    return scene


def smooth_photo(width: int = 640, height: int = 480) -> Image.Image:
    """Sky over a meadow: gradients, no edges worth reading."""
    y = np.linspace(0, 1, height)[:, None, None]
    sky = np.array([110, 170, 230]) * (1 - y) + np.array([200, 225, 245]) * y
    ground = np.array([60, 140, 50]) * np.ones_like(y)
    pixels = np.where(y < 0.6, sky, ground) * np.ones((1, width, 1))
    return Image.fromarray(pixels.astype(np.uint8))


def noise(width: int = 512, height: int = 512, seed: int = 7) -> Image.Image:
    """Speckle like gravel or leaves: edges everywhere, no lines of letters."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
    return Image.fromarray(pixels).resize((width, height), Image.Resampling.NEAREST)


def solid(colour: tuple[int, int, int], size: int = 256) -> Image.Image:
    return Image.new("RGB", (size, size), colour)


def thumbnail(image: Image.Image, side: int = 512) -> Image.Image:
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    return small
