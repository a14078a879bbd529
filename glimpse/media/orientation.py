"""EXIF orientation (values 1..8) applied to sizes and pixels.

Same mapping as ``PIL.ImageOps.exif_transpose``, but driven by a value we read once,
so it can be applied to a small thumbnail instead of the full-size image.
"""

from __future__ import annotations

from PIL import Image

_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})


def oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """(width, height) as a viewer shows the image."""
    width, height = size
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)
