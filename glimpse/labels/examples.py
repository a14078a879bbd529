"""Training examples: visual vectors with a label, from a folder, from the bucket, or
from corrections made in review.

- A folder (one subfolder per label): each file goes the pipeline's way — ingest's
  validation and thumbnail (``validate_media``), the caption stage's decode of it,
  then the captioner's ``predict`` — so its vector is the one the file would get if
  uploaded. Files ingest would reject are skipped and said.
- Keys in the bucket (``key,label`` CSV) and corrections: their stored vectors.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from PIL import Image

from glimpse.config import LimitsSettings
from glimpse.db import label_sets
from glimpse.db.media import media_id
from glimpse.db.vectors import VectorModel
from glimpse.labels.training import Examples
from glimpse.media import Rejected, validate_media
from glimpse.media.thumbnail import decode_thumbnail
from glimpse.models.captioning import Captioner

_CHUNK = 32  # images decoded and held at once


@dataclass
class Gathered:
    vectors: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)

    def extend(self, other: Gathered) -> None:
        self.vectors += other.vectors
        self.labels += other.labels
        self.sources += other.sources
        self.skipped += other.skipped

    def examples(self) -> Examples:
        dim = self.vectors[0].shape[0] if self.vectors else 0
        stacked = np.stack(self.vectors) if self.vectors else np.zeros((0, dim), np.float32)
        return Examples(stacked.astype(np.float32), list(self.labels), list(self.sources))


def folder_files(root: Path) -> list[tuple[Path, str]]:
    """(file, label) for every file in each subfolder of ``root`` (hidden ones left out);
    the subfolder's name is the label."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    found = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in sorted(sub.rglob("*")):
            if file.is_file() and not file.name.startswith("."):
                found.append((file, sub.name.strip()))
    return found


def from_folder(
    root: Path, captioner: Captioner, limits: LimitsSettings,
    progress: Callable[[int], None] = lambda n: None,
) -> Gathered:  # fmt: skip
    """Vectors of the images under ``root``'s label folders, as the pipeline makes them;
    ``progress(n)`` after each chunk of ``n`` files."""
    gathered = Gathered()
    files = folder_files(root)
    for start in range(0, len(files), _CHUNK):
        chunk = files[start : start + _CHUNK]
        images: list[Image.Image] = []
        kept: list[tuple[Path, str]] = []
        for path, label in chunk:
            thumbnail = _thumbnail(path, limits, gathered)
            if thumbnail is not None:
                images.append(decode_thumbnail(thumbnail))
                kept.append((path, label))
        for (path, label), analysis in zip(kept, captioner.predict(images), strict=True):
            if analysis.visual is None:
                gathered.skipped.append((str(path), "the captioner makes no visual vector"))
                continue
            gathered.vectors.append(analysis.visual)
            gathered.labels.append(label)
            gathered.sources.append(str(path))
        progress(len(chunk))
    return gathered


def _thumbnail(path: Path, limits: LimitsSettings, gathered: Gathered) -> bytes | None:
    try:
        checked = validate_media(path.read_bytes(), limits)
    except Rejected as exc:
        gathered.skipped.append((str(path), f"{exc.reason.value}: {exc.message}"))
        return None
    if checked.thumbnail is None:
        gathered.skipped.append((str(path), f"not an image ({checked.mime})"))
        return None
    return checked.thumbnail


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """``key,label`` rows of a CSV file (a header row ``key,label`` is allowed)."""
    pairs = []
    with path.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise ValueError(f"{path}:{n}: expected `key,label`, got {row!r}")
            if n == 1 and [c.strip().lower() for c in row] == ["key", "label"]:
                continue
            pairs.append((row[0].strip(), row[1].strip()))
    return pairs


def from_keys(
    conn: psycopg.Connection[Any], bucket: str, pairs: Sequence[tuple[str, str]],
    visual: VectorModel,
) -> Gathered:  # fmt: skip
    """Stored vectors of the keys' items; keys without one are skipped and said."""
    ids = {key: media_id(bucket, key) for key, _ in pairs}
    stored = label_sets.stored_vectors(conn, list(ids.values()), visual)
    return _gathered([(ids[key], key, label) for key, label in pairs], stored)


def from_corrections(conn: psycopg.Connection[Any], name: str, visual: VectorModel) -> Gathered:
    """The set's corrections made in review, with their items' stored vectors."""
    found = label_sets.corrections(conn, name)
    stored = label_sets.stored_vectors(conn, [mid for mid, _, _ in found], visual)
    gathered = _gathered(found, stored)
    gathered.sources = [f"correction {s}" for s in gathered.sources]
    return gathered


def _gathered(
    items: Sequence[tuple[uuid.UUID, str, str]], stored: dict[uuid.UUID, np.ndarray]
) -> Gathered:
    gathered = Gathered()
    for mid, key, label in items:
        vector = stored.get(mid)
        if vector is None:
            gathered.skipped.append((key, "no stored visual vector (not an accepted, captioned "
                                          "image yet)"))  # fmt: skip
            continue
        gathered.vectors.append(vector)
        gathered.labels.append(label)
        gathered.sources.append(key)
    return gathered
