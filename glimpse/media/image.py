"""Image checks: Pillow must agree with libmagic, stay in the pixel limit, decode fully.

The file is opened with the Pillow plugin for the type libmagic claimed, called
directly rather than through ``Image.open``: ``Image.open`` applies the process-wide
``Image.MAX_IMAGE_PIXELS`` bomb check, and changing that global per call is not
thread-safe. Opening only parses the header, so the pixel limit from our settings is
enforced before any pixel is decoded. Then the first frame is decoded completely
(``load()``), which catches truncated and damaged data. ``ImageFile.LOAD_TRUNCATED_IMAGES``
must stay False in any process that validates (it is Pillow's default).

Orientation: HEIF rotation lives in the container (irot/imir); libheif applies it and
pillow-heif resets EXIF orientation to 1, so it is never applied twice. Pillow's AVIF
plugin reports the container rotation as EXIF orientation, which ``exif`` then reads.
"""

from __future__ import annotations

import functools
import io
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO

import pillow_heif
from PIL import Image, ImageFile

from glimpse.config import LimitsSettings
from glimpse.media.budget import Admit, unlimited
from glimpse.media.exif import read_exif
from glimpse.media.orientation import oriented_size
from glimpse.media.reasons import Rejected, RejectReason
from glimpse.media.sniff import Claim
from glimpse.media.thumbnail import make_thumbnail

# What Pillow and its plugins raise on bad input (SyntaxError is Pillow's "not this
# format"; the AVIF plugin raises RuntimeError). They are caught only around the
# calls that parse or decode the bytes; anywhere else they are bugs and surface.
DECODE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    RuntimeError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    TypeError,
    KeyError,
)

# canonical MIME -> Pillow plugin id, and the ``Image.format`` values it may report
_PLUGIN: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
    "image/avif": "AVIF",
}
_FORMATS: dict[str, frozenset[str]] = {
    "image/jpeg": frozenset({"JPEG", "MPO"}),  # MPO: JPEG with more JPEGs appended
    "image/png": frozenset({"PNG"}),
    "image/webp": frozenset({"WEBP"}),
    "image/gif": frozenset({"GIF"}),
    "image/heic": frozenset({"HEIF"}),
    "image/heif": frozenset({"HEIF"}),
    "image/avif": frozenset({"AVIF"}),
}

# Formats whose extra frames are animation (an MPO's extra images are not; a HEIF's
# extra top-level images are bursts or depth maps).
_ANIMATABLE = frozenset({"GIF", "PNG", "WEBP", "AVIF"})
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")

_Factory = Callable[[IO[bytes], str], ImageFile.ImageFile]
_Accept = Callable[[bytes], bool | str] | None


@dataclass(frozen=True, slots=True)
class ImageFacts:
    width: int  # after EXIF orientation
    height: int
    captured_at: datetime | None
    metadata: dict[str, str]
    thumbnail: bytes


@functools.cache
def _openers() -> Mapping[str, tuple[_Factory, _Accept]]:
    """Pillow's plugin registry, with HEIF added once per process (not per call)."""
    pillow_heif.register_heif_opener()
    Image.init()
    registry: Mapping[str, tuple[_Factory, _Accept]] = Image.OPEN
    return {plugin: registry[plugin] for plugin in set(_PLUGIN.values()) if plugin in registry}


def inspect_image(
    data: bytes, claim: Claim, limits: LimitsSettings, admit: Admit = unlimited
) -> ImageFacts:
    """``admit`` is asked for the pixel count from the header before any pixel is decoded
    (see ``budget.DecodeBudget``)."""
    image = open_image(data, claim, limits.max_pixels)
    with image, admit(image.size[0] * image.size[1]):
        load_first_frame(image, data, claim)
        exif = read_exif(image)
        width, height = oriented_size(image.size, exif.orientation)
        thumbnail = make_thumbnail(image, limits.thumbnail_px, exif.orientation)
        metadata = {"format": str(image.format), "mode": image.mode, **exif.camera}
        if exif.orientation != 1:
            metadata["orientation"] = str(exif.orientation)
        if exif.captured_at is not None:
            metadata["captured_at_offset"] = (
                "from_exif" if exif.capture_offset_known else "assumed_utc"
            )
        if image.format in _ANIMATABLE:
            # last: for GIF this parses past the first frame; no pixel reads after it
            animated = _is_animated(image)
            if animated is not None:
                metadata["animated"] = "true" if animated else "false"
    return ImageFacts(width, height, exif.captured_at, metadata, thumbnail)


def open_image(data: bytes, claim: Claim, max_pixels: int) -> ImageFile.ImageFile:
    """Parse the header with the plugin for ``claim``; enforce the pixel limit."""
    opener = _openers().get(_PLUGIN[claim.mime])
    if opener is None:
        raise Rejected(
            RejectReason.UNSUPPORTED_TYPE,
            f"{claim.label} images cannot be decoded here (no {claim.label} support in Pillow)",
        )
    factory, accept = opener
    verdict = accept(data[:16]) if accept is not None else True
    if verdict is False:
        raise Rejected(
            RejectReason.MIME_MISMATCH,
            f"libmagic says {claim.detected}, but the image decoder does not recognise "
            f"a {claim.label} header",
        )
    if isinstance(verdict, str):  # the plugin knows the format but not this variant
        raise Rejected(RejectReason.UNDECODABLE, f"unsupported {claim.label} variant: {verdict}")
    try:
        image = factory(io.BytesIO(data), "")
    except Image.DecompressionBombError as exc:  # GIF checks frames while opening
        raise Rejected(RejectReason.TOO_MANY_PIXELS, _bomb_message(exc, max_pixels)) from exc
    except DECODE_ERRORS as exc:
        raise Rejected(
            RejectReason.UNDECODABLE,
            f"the file starts like a {claim.label} but is not a readable {claim.label} image "
            f"({_detail(exc)})",
        ) from exc
    if image.format not in _FORMATS[claim.mime]:
        image.close()
        raise Rejected(
            RejectReason.MIME_MISMATCH,
            f"libmagic says {claim.detected}, but the image decoder reads {image.format}",
        )
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise Rejected(RejectReason.UNDECODABLE, f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        image.close()
        raise Rejected(RejectReason.TOO_MANY_PIXELS, _pixels_message(width, height, max_pixels))
    return image


def load_first_frame(image: ImageFile.ImageFile, data: bytes, claim: Claim) -> None:
    """Decode every pixel of the first frame; truncation and damage surface here."""
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # GIF frames are checked against Pillow's global limit while decoding. The
        # warning only arrives as an exception where warnings are turned into errors.
        raise Rejected(RejectReason.TOO_MANY_PIXELS, _bomb_message(exc, None)) from exc
    except DECODE_ERRORS as exc:
        if "truncated" in str(exc).lower():
            message = f"the {claim.label} data ends early (truncated at byte {len(data)})"
        else:
            message = f"the {claim.label} image data is damaged ({_detail(exc)})"
        raise Rejected(RejectReason.UNDECODABLE, message) from exc


def _is_animated(image: Image.Image) -> bool | None:
    """Whether more frames follow the first; None if the rest cannot even be parsed.

    Only the first frame is validated and used, so damage further on is not a reason
    to reject; it only leaves this detail unknown.
    """
    try:
        return bool(getattr(image, "is_animated", False))
    except DECODE_ERRORS:
        return None


def _pixels_message(width: int, height: int, max_pixels: int) -> str:
    return (
        f"image is {width}x{height} = {_megapixels(width * height)} Mpx, "
        f"limit is {_megapixels(max_pixels)} Mpx"
    )


def _bomb_message(exc: Exception, max_pixels: int | None) -> str:
    """Pillow's own bomb check fired (a frame larger than the image it sits in)."""
    found = _BOMB_PIXELS.search(str(exc))
    size = f"{_megapixels(int(found.group(1)))} Mpx" if found else "too many pixels"
    limit = f", limit is {_megapixels(max_pixels)} Mpx" if max_pixels is not None else ""
    return f"image has a frame of {size}, over the decoder's safety limit{limit}"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f}".removesuffix(".0")


def _detail(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
