"""EXIF facts ingest keeps: orientation, capture time, camera. Tolerant of junk.

A photo with malformed EXIF is still a good photo, so nothing here rejects: an
unreadable field is simply absent. GPS is deliberately not copied into metadata
(location is personal; nothing downstream needs it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from PIL import ExifTags, Image

_ORIENTATION = ExifTags.Base.Orientation
_MAKE = ExifTags.Base.Make
_MODEL = ExifTags.Base.Model
_LENS_MODEL = ExifTags.Base.LensModel
_DATETIME_ORIGINAL = ExifTags.Base.DateTimeOriginal
_SUBSEC_ORIGINAL = ExifTags.Base.SubsecTimeOriginal
_OFFSET_ORIGINAL = ExifTags.Base.OffsetTimeOriginal

_DATETIME = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")
_MAX_TEXT = 128  # metadata stays small; EXIF strings can be kilobytes of padding


@dataclass(frozen=True, slots=True)
class ExifFacts:
    orientation: int  # 1..8, 1 when absent or nonsense
    captured_at: datetime | None  # tz-aware
    capture_offset_known: bool  # False: the camera gave no offset and UTC was assumed
    camera: dict[str, str]  # camera_make / camera_model / lens_model when present


# Pillow's EXIF parser raises these on junk; UserWarning ("Corrupt EXIF data") only
# arrives as an exception where warnings are turned into errors.
_EXIF_ERRORS = (KeyError, ValueError, TypeError, OSError, SyntaxError, UserWarning)


def read_exif(image: Image.Image) -> ExifFacts:
    try:
        exif = image.getexif()
    except _EXIF_ERRORS:
        exif = Image.Exif()
    try:
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    except _EXIF_ERRORS:
        exif_ifd = {}
    captured_at, offset_known = _captured_at(exif_ifd)
    camera = {
        key: text
        for key, value in (
            ("camera_make", exif.get(_MAKE)),
            ("camera_model", exif.get(_MODEL)),
            ("lens_model", exif_ifd.get(_LENS_MODEL)),
        )
        if (text := _clean_text(value))
    }
    return ExifFacts(_orientation(exif.get(_ORIENTATION)), captured_at, offset_known, camera)


def _orientation(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _captured_at(exif_ifd: dict[int, object]) -> tuple[datetime | None, bool]:
    raw = _clean_text(exif_ifd.get(_DATETIME_ORIGINAL))
    match = _DATETIME.search(raw) if raw else None
    if match is None:
        return None, False
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    try:
        naive = datetime(year, month, day, hour, minute, second)
    except ValueError:  # "0000:00:00 00:00:00" and friends: cameras without a clock
        return None, False
    subsec = _clean_text(exif_ifd.get(_SUBSEC_ORIGINAL))
    if subsec.isdigit():
        naive = naive.replace(microsecond=int(subsec[:6].ljust(6, "0")))
    offset = _OFFSET.fullmatch(_clean_text(exif_ifd.get(_OFFSET_ORIGINAL)))
    if offset is None:
        # EXIF before 2.31 has no offset: the camera's local time is unknown, so we
        # assume UTC (and say so in metadata) rather than guess the server's zone.
        return naive.replace(tzinfo=UTC), False
    sign, hours, minutes = offset.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    try:
        zone = timezone(-delta if sign == "-" else delta)
    except ValueError:  # offsets beyond ±24 h
        return naive.replace(tzinfo=UTC), False
    return naive.replace(tzinfo=zone), True


def _clean_text(value: object) -> str:
    """EXIF ASCII fields arrive as str or bytes, NUL-padded; keep printable text only."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    text = "".join(ch for ch in value if ch.isprintable())
    return text.strip()[:_MAX_TEXT]
