"""glimpse's search-quality evaluation set (``bench/quality_set.toml``) and its measures.

The photos are read from the installed packages the set names (scikit-image,
scikit-learn), never copied into the repository; each carries its source and licence.
"""

from __future__ import annotations

import importlib.util
import io
import random
import string
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from glimpse.media.thumbnail import make_thumbnail

SET_FILE = Path(__file__).resolve().parent.parent / "quality_set.toml"
THUMBNAIL_PX = 512  # the caption service reads ingest's 512-px thumbnails


@dataclass(frozen=True, slots=True)
class Photo:
    id: str
    package: str
    path: str
    source: str
    licence: str
    queries: tuple[str, ...]
    # captions people wrote for it (bench/caption_quality.py)
    references: tuple[str, ...] = ()

    def file(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{self.package} (a dev dependency) is not installed")
        return Path(spec.origin).parent / self.path

    def original(self, side: int) -> Image.Image | None:
        """The photo decoded to at most ``side`` px on its long side, as the caption
        service reads an original for small text."""
        with Image.open(self.file()) as image:
            image.draft("RGB", (side, side))
            upright = ImageOps.exif_transpose(image).convert("RGB")
        upright.thumbnail((side, side), Image.Resampling.LANCZOS)
        return upright

    def thumbnail(self) -> Image.Image:
        """The photo as the caption service sees it: ingest's 512-px JPEG, decoded."""
        with Image.open(self.file()) as original:
            data = make_thumbnail(original, THUMBNAIL_PX)
        with Image.open(io.BytesIO(data)) as thumb:
            return thumb.convert("RGB")


@dataclass(frozen=True, slots=True)
class Spoken:
    text: str
    target: str


@dataclass(frozen=True, slots=True)
class QualitySet:
    photos: tuple[Photo, ...]
    absent: tuple[str, ...]
    spoken: tuple[Spoken, ...]

    def typed(self) -> list[tuple[str, str]]:
        """(query, id of the photo meant), in file order."""
        return [(query, photo.id) for photo in self.photos for query in photo.queries]


def load_set(path: Path = SET_FILE) -> QualitySet:
    data = tomllib.loads(path.read_text())
    photos = tuple(
        Photo(
            id=p["id"],
            package=p["package"],
            path=p["path"],
            source=p["source"],
            licence=p["licence"],
            queries=tuple(p["queries"]),
            references=tuple(p.get("references", ())),
        )
        for p in data["photo"]
    )
    spoken = tuple(Spoken(s["text"], s["target"]) for s in data.get("spoken", []))
    ids = {photo.id for photo in photos}
    if len(ids) != len(photos) or any(s.target not in ids for s in spoken):
        raise ValueError(f"{path}: photo ids must be unique and spoken targets known")
    return QualitySet(photos, tuple(data["absent"]["queries"]), spoken)


@dataclass(frozen=True, slots=True)
class Scores:
    """Typed queries: right photo first / in the top 5 / reciprocal rank; absent things."""

    queries: int
    at_1: int
    at_5: int
    mrr: float
    empty: int  # typed queries answered with nothing
    absent_queries: int
    absent_hits: int  # everything shown for absent things
    absent_strong: int  # of which not marked weak

    def row(self) -> list[str]:
        n = self.queries
        per_absent = self.absent_hits / self.absent_queries if self.absent_queries else 0.0
        return [
            f"{self.at_1}/{n} ({self.at_1 / n:.2f})",
            f"{self.at_5}/{n} ({self.at_5 / n:.2f})",
            f"{self.mrr:.3f}",
            f"{self.empty}/{n}",
            f"{self.absent_hits} ({per_absent:.1f}/query)",
            f"{self.absent_strong}",
        ]


def rank_of(target: str, shown: Sequence[str]) -> int | None:
    """1-based rank of ``target`` among the shown ids, or None."""
    return shown.index(target) + 1 if target in shown else None


def score(
    typed: Sequence[tuple[str, Sequence[str]]],
    absent: Sequence[tuple[int, int]],
) -> Scores:
    """``typed``: (target id, shown ids) per query; ``absent``: (shown, not weak) per query."""
    ranks = [rank_of(target, shown) for target, shown in typed]
    return Scores(
        queries=len(typed),
        at_1=sum(1 for r in ranks if r == 1),
        at_5=sum(1 for r in ranks if r is not None and r <= 5),
        mrr=sum(1.0 / r for r in ranks if r is not None) / len(typed),
        empty=sum(1 for _, shown in typed if not shown),
        absent_queries=len(absent),
        absent_hits=sum(shown for shown, _ in absent),
        absent_strong=sum(strong for _, strong in absent),
    )


def nonsense_queries(count: int, seed: int = 1) -> list[str]:
    """``count`` strings of one to three made-up words (4-8 random letters each): what a
    mistyped or meaningless query looks like to the text model. A good search shows at
    most a weak guess for them; the same seed gives the same strings."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 8)))

    return [" ".join(word() for _ in range(rng.randint(1, 3))) for _ in range(count)]
