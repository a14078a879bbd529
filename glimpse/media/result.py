"""What a successful validation returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from glimpse.media.reasons import MediaKind


@dataclass(frozen=True, slots=True)
class ValidatedMedia:
    kind: MediaKind
    mime: str  # canonical: image/jpeg, audio/ogg, ...
    size_bytes: int
    sha256: str  # hex digest of the full bytes
    width: int | None  # images: after EXIF orientation, as a viewer shows it
    height: int | None
    duration_s: float | None  # audio: counted from decoded samples
    captured_at: datetime | None  # images: EXIF DateTimeOriginal, always tz-aware
    metadata: dict[str, str]  # small and JSON-safe
    thumbnail: bytes | None  # images: RGB JPEG, longest side <= limits.thumbnail_px
    thumbnail_mime: str | None
