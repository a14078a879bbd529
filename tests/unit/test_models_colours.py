"""Colour names for what a person would call the colours of an image."""

from __future__ import annotations

import pytest
from PIL import Image, ImageOps

from bench.common.text_images import smooth_photo, solid
from glimpse.models.colours import MONOCHROME, dominant_colours


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((210, 30, 35), "red"),
        ((250, 140, 10), "orange"),
        ((245, 220, 40), "yellow"),
        ((40, 150, 60), "green"),
        ((30, 70, 190), "blue"),
        ((135, 190, 235), "blue"),  # a clear sky
        ((15, 25, 80), "blue"),  # navy
        ((120, 40, 150), "purple"),
        ((245, 160, 185), "pink"),
        ((120, 70, 30), "brown"),
        ((250, 250, 250), "white"),
        ((128, 128, 128), "grey"),
        ((8, 8, 8), "black"),
    ],
)
def test_a_plain_colour_is_named(rgb: tuple[int, int, int], name: str) -> None:
    assert dominant_colours(solid(rgb))[0] == (name, 1.0)


def test_the_largest_colours_come_first_with_their_share() -> None:
    image = solid((210, 30, 35), 100)
    image.paste(solid((30, 70, 190), 100).crop((0, 0, 100, 30)), (0, 0))

    [(first, red), (second, blue)] = dominant_colours(image)

    assert (first, second) == ("red", "blue")
    assert (red, blue) == (pytest.approx(0.7, abs=0.01), pytest.approx(0.3, abs=0.01))


def test_small_patches_are_not_dominant() -> None:
    image = solid((40, 150, 60), 100)
    image.paste(solid((210, 30, 35), 10), (0, 0))

    assert [name for name, _ in dominant_colours(image)] == ["green"]


def test_a_greyscale_photo_is_black_and_white() -> None:
    grey = ImageOps.grayscale(smooth_photo()).convert("RGB")

    names = [name for name, _ in dominant_colours(grey)]

    assert MONOCHROME in names
    assert MONOCHROME not in [name for name, _ in dominant_colours(smooth_photo())]


def test_sky_over_a_meadow_is_blue_and_green() -> None:
    assert [name for name, _ in dominant_colours(smooth_photo())] == ["blue", "green"]


def test_any_mode_is_read() -> None:
    assert dominant_colours(Image.new("P", (10, 10)))[0][0] == "black"
