"""Thumbnails: RGB JPEG, longest side at most ``max_px``, upright, never upscaled.

Captioning and embedding read the thumbnail rather than the original, so it must
look like the photo as a person sees it: orientation applied, transparency
flattened onto white (JPEG has no alpha). It carries no EXIF (no GPS leaks through
thumbnails); an RGB ICC profile is kept so wide-gamut photos keep their colours.
"""

from __future__ import annotations

import io

from PIL import Image

from glimpse.media.orientation import apply_orientation

THUMBNAIL_MIME = "image/jpeg"
_JPEG_QUALITY = 85
_BACKGROUND = (255, 255, 255)
# Modes Pillow resizes well as they are; the rest are converted first.
_RESIZABLE = frozenset({"RGB", "RGBA", "L", "LA", "CMYK"})
_HIGH_BIT_DEPTH = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def make_thumbnail(image: Image.Image, max_px: int, orientation: int = 1) -> bytes:
    """Encode a thumbnail of an already loaded ``image`` (its first frame)."""
    small = _shrink(_resizable(image), max_px)
    upright = apply_orientation(_flatten(small), orientation)
    out = io.BytesIO()
    upright.save(out, "JPEG", quality=_JPEG_QUALITY, icc_profile=_rgb_icc_profile(image))
    return out.getvalue()


def decode_thumbnail(data: bytes, max_px: int = 512) -> Image.Image:
    """RGB pixels of a stored thumbnail, as the captioner is given them (by the caption
    stage, and by the API for a search by image). An original stored without a thumbnail
    is decoded at about ``max_px`` (JPEG draft scaling)."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (max_px, max_px))
        return image.convert("RGB")


def thumbnail_size(size: tuple[int, int], max_px: int) -> tuple[int, int]:
    """Fit ``size`` into a ``max_px`` square, keeping the aspect ratio; never enlarge."""
    width, height = size
    longest = max(width, height)
    if longest <= max_px:
        return width, height
    scale = max_px / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrink(image: Image.Image, max_px: int) -> Image.Image:
    size = thumbnail_size(image.size, max_px)
    if size == image.size:
        return image
    # reducing_gap: a cheap integer box reduction first, then Lanczos on the rest;
    # 1.5 (not 2.0) lets a 1600x1200 photo use the box step too: 9 ms instead of 21
    # (bench/RESULTS.md); the Lanczos pass still works on 1.5x the target size.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.5)


def _resizable(image: Image.Image) -> Image.Image:
    if image.mode in _RESIZABLE:
        return image
    if image.mode in _HIGH_BIT_DEPTH:
        # 16-bit greyscale PNG: scale to 8 bits instead of clipping everything at 255.
        return image.convert("I").point(lambda value: value / 256).convert("L")
    if image.mode == "1":
        return image.convert("L")
    # palette images mark transparency in info rather than in their mode
    has_alpha = image.mode in ("PA", "RGBa", "La") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _rgb_icc_profile(image: Image.Image) -> bytes | None:
    profile = image.info.get("icc_profile")
    # bytes 16..20 of an ICC header name its colour space; a CMYK or grey profile
    # would be wrong on an RGB thumbnail.
    if isinstance(profile, bytes) and profile[16:20] == b"RGB ":
        return profile
    return None
