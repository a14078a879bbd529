"""Image-caption pairs for ``glimpse captioner train``: read from a CSV or JSONL file,
images from local files or the bucket.

    image,caption                          {"image": "shop/tart.jpg", "caption": "..."}
    photos/tart.jpg,a lemon tart on a plate {"image": "...", "captions": ["...", "..."]}

An image may have any number of captions (one row each, or ``captions`` in JSONL).
``image`` is a path, relative to the pairs file's folder unless absolute; a path that
is no file there is taken as a key in the bucket, so alt texts of uploaded photos train
without downloading them first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from glimpse.media.image import DECODE_ERRORS
from glimpse.media.thumbnail import make_thumbnail

_MAX_IMAGE_BYTES = 64 * 1024 * 1024
_UNREADABLE: tuple[type[Exception], ...] = (*DECODE_ERRORS, Image.DecompressionBombError)


class PairsError(ValueError):
    """The pairs file or one of its images cannot be used; says which line or image."""


@dataclass(frozen=True, slots=True)
class Pairs:
    captions: dict[str, list[str]]  # image (as written in the file) -> its captions
    base: Path  # relative image paths start here

    def local_path(self, image: str) -> Path | None:
        path = Path(image).expanduser()
        path = path if path.is_absolute() else self.base / path
        return path if path.is_file() else None


def read_pairs(path: Path) -> Pairs:
    """The pairs in ``path`` (``.csv``, or ``.jsonl``/``.json`` lines), by image."""
    if not path.is_file():
        raise PairsError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8-sig")
    rows = _jsonl(path, text) if path.suffix in (".jsonl", ".json", ".ndjson") else _csv(path, text)
    captions: dict[str, list[str]] = {}
    for image, caption in rows:
        if image.strip() and caption.strip():
            captions.setdefault(image.strip(), []).append(caption.strip())
    if not captions:
        raise PairsError(f"{path}: no image with a caption")
    return Pairs(captions, path.parent)


def _csv(path: Path, text: str) -> list[tuple[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"image", "caption"} <= set(reader.fieldnames):
        raise PairsError(f"{path}: the first line must name the columns image,caption")
    return [(row["image"] or "", row["caption"] or "") for row in reader]


def _jsonl(path: Path, text: str) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            image = item["image"]
            texts = item["captions"] if "captions" in item else [item["caption"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise PairsError(
                f'{path}:{number}: expected {{"image": ..., "caption": ...}} ({exc})'
            ) from exc
        rows.extend((str(image), str(caption)) for caption in texts)
    return rows


def load_images(
    pairs: Pairs,
    thumbnail_px: int,
    read_key: Callable[[str, int], bytes | None] | None = None,
) -> dict[str, Image.Image]:
    """Every image of ``pairs`` as the caption stage sees it (ingest's thumbnail,
    ``limits.thumbnail_px``); ``read_key(key, max_bytes)`` reads one from the bucket
    (None: local files only)."""
    return {
        image: _as_thumbnail(image, _read(pairs, image, read_key), thumbnail_px)
        for image in pairs.captions
    }


def _read(pairs: Pairs, image: str, read_key: Callable[[str, int], bytes | None] | None) -> bytes:
    local = pairs.local_path(image)
    if local is not None:
        return local.read_bytes()
    if read_key is None:
        raise PairsError(f"{image}: no such file under {pairs.base} (and no bucket to ask)")
    data = read_key(image, _MAX_IMAGE_BYTES)
    if data is None:
        raise PairsError(f"{image}: neither a file under {pairs.base} nor in the bucket")
    return data


def _as_thumbnail(name: str, data: bytes, side: int) -> Image.Image:
    """The image as the caption stage sees it: ingest's JPEG thumbnail, decoded
    (training on other pixels than the model will meet in the pipeline costs accuracy)."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.draft("RGB", (2 * side, 2 * side))  # JPEG: decode small
            upright = ImageOps.exif_transpose(opened)
            thumbnail = make_thumbnail(upright, side)
    except _UNREADABLE as exc:
        raise PairsError(f"{name}: not a readable image ({exc})") from exc
    with Image.open(io.BytesIO(thumbnail)) as decoded:
        return decoded.convert("RGB")
