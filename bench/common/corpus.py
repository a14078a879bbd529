"""The benchmarks' photo corpus: deterministic, distinct, photo-like JPEGs and PNGs
(bench.ingest, bench.pipeline and bench.backfill upload it)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import ExifTags, Image

PREFIX = "bench/"


@dataclass(frozen=True, slots=True)
class Photo:
    key: str
    data: bytes
    mime: str


def make_corpus(count: int, large_every: int, png_every: int, seed: int) -> list[Photo]:
    """``count`` distinct photos: mostly 1600x1200 JPEGs with camera EXIF, every
    ``large_every``-th a 4000x3000 (12 MP) JPEG, every ``png_every``-th a PNG.
    The same seed gives the same bytes."""
    # One generator per photo, seeded by (seed, index): the bytes do not depend on the
    # order the threads finish in. numpy and Pillow release the GIL, so threads help.
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return list(pool.map(lambda i: _photo(i, seed, large_every, png_every), range(count)))


def _photo(index: int, seed: int, large_every: int, png_every: int) -> Photo:
    rng = np.random.default_rng([seed, index])
    if png_every and index % png_every == png_every - 1:
        png = _encode_png(_pixels(rng, 1600, 1200))
        return Photo(f"{PREFIX}{index:05d}.png", png, "image/png")
    large = bool(large_every) and index % large_every == large_every - 1
    width, height = (4000, 3000) if large else (1600, 1200)
    jpeg = _encode_jpeg(_pixels(rng, width, height), index)
    return Photo(f"{PREFIX}{index:05d}.jpg", jpeg, "image/jpeg")


def _pixels(rng: np.random.Generator, width: int, height: int) -> np.ndarray[Any, Any]:
    """Photo-like pixels: smooth colour regions, some texture, a sky-to-ground gradient
    and sensor noise. Flat or pure-noise images would compress (and decode) unlike
    photos and make the numbers meaningless."""
    blobs = _upscaled(rng, 8, 6, width, height, Image.Resampling.BICUBIC)
    texture = _upscaled(rng, width // 16, height // 16, width, height, Image.Resampling.BILINEAR)
    gradient = np.linspace(-30, 30, height, dtype=np.float32)[:, None, None]
    noise = rng.standard_normal((height, width, 1), dtype=np.float32) * 6
    mixed = blobs * 0.75 + texture * 0.25 + gradient + noise
    return np.clip(mixed, 0, 255).astype(np.uint8)


def _upscaled(
    rng: np.random.Generator,
    small_w: int,
    small_h: int,
    width: int,
    height: int,
    resample: Image.Resampling,
) -> np.ndarray[Any, Any]:
    tiny = Image.fromarray(rng.integers(0, 256, (small_h, small_w, 3), dtype=np.uint8))
    return np.asarray(tiny.resize((width, height), resample), dtype=np.float32)


def _encode_jpeg(pixels: np.ndarray[Any, Any], index: int) -> bytes:
    # Camera EXIF like a phone's, so the EXIF path runs; every 4th is a portrait shot
    # stored sideways (orientation 6), so thumbnails get rotated like real ones.
    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "BenchCam", f"Model {index % 3}"
    exif[ExifTags.Base.Orientation] = 6 if index % 4 == 0 else 1
    exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    exif_ifd[ExifTags.Base.DateTimeOriginal] = (
        f"2024:07:{1 + index % 28:02d} 12:{index % 60:02d}:00"
    )
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def _encode_png(pixels: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def corpus_bytes(corpus: Sequence[Photo]) -> int:
    return sum(len(p.data) for p in corpus)


def corpus_mix(corpus: Sequence[Photo]) -> str:
    """How many of each kind, in the order first seen: "280 x 1600x1200 JPEG, …"."""
    kinds: dict[str, int] = {}
    for photo in corpus:
        kind = _kind_of(photo)
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{n} x {kind}" for kind, n in kinds.items())


def _kind_of(photo: Photo) -> str:
    if photo.mime == "image/png":
        return "1600x1200 PNG"
    with Image.open(io.BytesIO(photo.data)) as image:
        return f"{image.width}x{image.height} JPEG"
