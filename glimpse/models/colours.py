"""The names of an image's dominant colours, so "red car" or "blue sky" find something.

Eleven basic colour terms (black, white, grey, red, orange, yellow, green, blue, purple,
pink, brown: the set most languages name), assigned per pixel in CIE L*C*h, where
lightness, colourfulness and hue are separate axes: a pixel with little colour is black,
grey or white by its lightness; any other takes the name of the nearest of a few
prototypes per term (its focal colour and usual dark, pale or dull variants: brown is
dark orange, pink is pale red, teal is a blue). A histogram over the names of a
64 x 64 copy then gives each name's share; the names reaching ``min_share`` are kept,
largest first. An image with almost no colourful pixel is also "black and white".
No clustering: a named histogram says the same for a fraction of the cost (~1 ms).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

NAMES = (
    "black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink",
    "brown",
)  # fmt: skip
MONOCHROME = "black and white"
_SIDE = 64
_ACHROMATIC_CHROMA = 12.0  # C* below this has no hue a person would name
_MONOCHROME_SHARE = 0.03  # colourful pixels below this share: a black and white image

Floats = npt.NDArray[np.float64]


def dominant_colours(
    image: Image.Image, min_share: float = 0.15, most: int = 3
) -> list[tuple[str, float]]:
    """(name, share of the image) for its dominant colours, largest first."""
    small = image.convert("RGB").resize((_SIDE, _SIDE), Image.Resampling.BOX)
    lightness, chroma, hue = lch(np.asarray(small, dtype=np.float64).reshape(-1, 3) / 255.0)
    names = name_pixels(lightness, chroma, hue)
    shares = np.bincount(names, minlength=len(NAMES)) / len(names)
    found = [(NAMES[i], float(shares[i])) for i in np.argsort(-shares) if shares[i] >= min_share]
    found = found[:most]
    if float(np.mean(chroma >= _ACHROMATIC_CHROMA)) < _MONOCHROME_SHARE:
        found.append((MONOCHROME, 1.0))
    return [(name, round(share, 3)) for name, share in found]


def lch(rgb: Floats) -> tuple[Floats, Floats, Floats]:
    """sRGB in [0, 1] (rows of r, g, b) -> CIE L* (0-100), C*, h (degrees), D65."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array(
        [
            [0.4124564, 0.2126729, 0.0193339],
            [0.3575761, 0.7151522, 0.1191920],
            [0.1804375, 0.0721750, 0.9503041],
        ]
    )
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lightness = 116 * f[:, 1] - 16
    a = 500 * (f[:, 0] - f[:, 1])
    b = 200 * (f[:, 1] - f[:, 2])
    return lightness, np.hypot(a, b), np.degrees(np.arctan2(b, a)) % 360


def name_pixels(lightness: Floats, chroma: Floats, hue: Floats) -> npt.NDArray[np.intp]:
    """Index into NAMES of each pixel's basic colour term."""
    a = chroma * np.cos(np.radians(hue))
    b = chroma * np.sin(np.radians(hue))
    pixels = np.column_stack([lightness * _LIGHTNESS_WEIGHT, a, b])
    distance = ((pixels[:, None, :] - _PROTOTYPES[None, :, :]) ** 2).sum(axis=2)
    named = _PROTOTYPE_NAMES[np.argmin(distance, axis=1)]
    achromatic = np.select(
        [lightness < 25, lightness > 88],
        [NAMES.index("black"), NAMES.index("white")],
        default=NAMES.index("grey"),
    )
    # darker pixels show less chroma for the same ink: let near-black stay black
    grey_enough = (chroma < _ACHROMATIC_CHROMA) | ((lightness < 15) & (chroma < 20))
    return np.asarray(np.where(grey_enough, achromatic, named), dtype=np.intp)


def _prototypes() -> tuple[Floats, npt.NDArray[np.intp]]:
    """Each chromatic term's focal colour and its usual dark, pale or dull variants, in
    (weighted L*, a*, b*): a pixel takes the name of the nearest."""
    names, rgb = zip(*[(name, colour) for name, colours in _FOCAL.items() for colour in colours],
                     strict=True)  # fmt: skip
    lightness, chroma, hue = lch(np.asarray(rgb, dtype=np.float64) / 255.0)
    points = np.column_stack(
        [
            lightness * _LIGHTNESS_WEIGHT,
            chroma * np.cos(np.radians(hue)),
            chroma * np.sin(np.radians(hue)),
        ]
    )
    return points, np.array([NAMES.index(name) for name in names], dtype=np.intp)


# Hue and colourfulness decide a name more than lightness does (a dark blue is blue).
_LIGHTNESS_WEIGHT = 0.5
_FOCAL: dict[str, list[tuple[int, int, int]]] = {
    "red": [(200, 30, 40), (140, 20, 25), (230, 60, 50)],
    "orange": [(240, 130, 20), (250, 160, 80)],
    "yellow": [(245, 220, 40), (225, 205, 100), (250, 240, 150)],
    "green": [(40, 150, 60), (20, 80, 30), (140, 190, 80), (100, 120, 40), (60, 170, 140)],
    "blue": [(30, 70, 190), (120, 170, 230), (20, 30, 90), (0, 130, 150), (70, 110, 150)],
    "purple": [(120, 40, 150), (180, 140, 210), (70, 20, 80)],
    "pink": [(240, 140, 170), (230, 70, 150), (250, 200, 210)],
    "brown": [(120, 70, 30), (80, 50, 30), (170, 120, 70), (190, 160, 120), (100, 40, 30)],
}
_PROTOTYPES, _PROTOTYPE_NAMES = _prototypes()
