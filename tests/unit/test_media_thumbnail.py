"""Thumbnails: upright, at most 512 px, never upscaled, always RGB JPEG without EXIF."""

from __future__ import annotations

import io

import pytest
from badfiles import (
    animated_gif,
    jpeg,
    png_grey16,
    png_palette_transparent,
    png_rgba,
)
from PIL import Image

from glimpse.config import LimitsSettings
from glimpse.media import THUMBNAIL_MIME, make_thumbnail, validate_media

LIMITS = LimitsSettings()  # thumbnail_px = 512


def thumbnail_of(data: bytes, limits: LimitsSettings = LIMITS) -> Image.Image:
    media = validate_media(data, limits)
    assert media.thumbnail is not None
    assert media.thumbnail_mime == THUMBNAIL_MIME == "image/jpeg"
    thumb = Image.open(io.BytesIO(media.thumbnail))
    assert thumb.format == "JPEG"
    assert thumb.mode == "RGB"
    return thumb


def near(
    image: Image.Image, xy: tuple[int, int], expected: tuple[int, int, int], slack: int = 40
) -> bool:
    """The pixel at ``xy`` is ``expected``, give or take JPEG's rounding."""
    colour = image.getpixel(xy)
    assert isinstance(colour, tuple)
    return all(abs(a - b) <= slack for a, b in zip(colour, expected, strict=True))


RED, BLUE, GREEN, WHITE = (200, 30, 30), (30, 30, 200), (0, 128, 0), (255, 255, 255)


def test_exif_orientation_is_applied() -> None:
    # Stored landscape, left half red and right half blue; orientation 6 means
    # "turn 90 degrees clockwise to view", which puts red on top.
    thumb = thumbnail_of(jpeg(300, 200, orientation=6, split_colours=True))

    assert thumb.size == (200, 300)
    assert near(thumb, (100, 20), RED)
    assert near(thumb, (100, 280), BLUE)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((4000, 3000), (512, 384)), ((1500, 3000), (256, 512)), ((2048, 2048), (512, 512))],
)
def test_longest_side_is_512(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert thumbnail_of(jpeg(*size)).size == expected


def test_size_follows_the_setting() -> None:
    assert thumbnail_of(jpeg(1000, 500), LimitsSettings(thumbnail_px=128)).size == (128, 64)


def test_small_images_are_not_upscaled() -> None:
    assert thumbnail_of(jpeg(300, 200)).size == (300, 200)


def test_transparency_becomes_white() -> None:
    thumb = thumbnail_of(png_rgba(64, 48))  # left half green, right half transparent

    assert near(thumb, (8, 24), GREEN)
    assert near(thumb, (56, 24), WHITE)


def test_palette_image_with_transparency_becomes_rgb() -> None:
    thumb = thumbnail_of(png_palette_transparent())  # left red, right transparent

    assert near(thumb, (5, 15), (255, 0, 0))
    assert near(thumb, (35, 15), WHITE)


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    thumb = thumbnail_of(png_grey16())  # 32768 of 65535: mid grey

    assert near(thumb, (16, 16), (128, 128, 128), slack=4)


def test_animated_gif_uses_the_first_frame() -> None:
    thumb = thumbnail_of(animated_gif())  # red, then green

    assert near(thumb, (30, 20), (255, 0, 0))


def test_thumbnail_carries_no_exif() -> None:
    data = jpeg(800, 600, taken="2023:07:14 18:30:05", camera=("Canon", "EOS R6"))

    thumb = thumbnail_of(data)

    assert "exif" not in thumb.info
    assert len(thumb.getexif()) == 0


def test_make_thumbnail_works_on_any_loaded_image() -> None:
    image = Image.new("LA", (1024, 256), (90, 255))

    thumb = Image.open(io.BytesIO(make_thumbnail(image, 512, orientation=8)))

    assert thumb.size == (128, 512)  # orientation 8 turns it upright: portrait
    assert thumb.mode == "RGB"
