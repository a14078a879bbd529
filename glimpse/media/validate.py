"""``validate_media``: decide whether ingest accepts a file, from its bytes alone.

Order of checks, cheapest first: size, libmagic's claim, ZIP polyglot, then the
full decode for the claimed kind (``image`` / ``audio``). Pure: no I/O, no globals
changed per call, safe to call from many threads at once.
"""

from __future__ import annotations

import hashlib

from glimpse.config import LimitsSettings
from glimpse.media.audio import inspect_audio
from glimpse.media.budget import Admit, unlimited
from glimpse.media.image import inspect_image
from glimpse.media.polyglot import ends_with_zip_archive
from glimpse.media.reasons import MediaKind, Rejected, RejectReason
from glimpse.media.result import ValidatedMedia
from glimpse.media.sniff import sniff
from glimpse.media.thumbnail import THUMBNAIL_MIME


def validate_media(data: bytes, limits: LimitsSettings, admit: Admit = unlimited) -> ValidatedMedia:
    """Accept ``data`` as an image or an audio file, or raise ``Rejected`` saying why.
    An image's decode waits for ``admit(width * height)`` (a ``DecodeBudget``'s)."""
    if not data:
        raise Rejected(RejectReason.EMPTY, "file is 0 bytes")
    if len(data) > limits.max_bytes:
        raise Rejected(
            RejectReason.TOO_LARGE,
            f"file is {_size(len(data))}, limit is {_size(limits.max_bytes)}",
        )
    claim = sniff(data)
    if ends_with_zip_archive(data):
        raise Rejected(
            RejectReason.MIME_MISMATCH,
            f"the file starts like {claim.label} but is also a ZIP archive (a polyglot)",
        )
    digest = hashlib.sha256(data).hexdigest()
    if claim.kind is MediaKind.IMAGE:
        image = inspect_image(data, claim, limits, admit)
        return ValidatedMedia(
            kind=MediaKind.IMAGE,
            mime=claim.mime,
            size_bytes=len(data),
            sha256=digest,
            width=image.width,
            height=image.height,
            duration_s=None,
            captured_at=image.captured_at,
            metadata=image.metadata,
            thumbnail=image.thumbnail,
            thumbnail_mime=THUMBNAIL_MIME,
        )
    audio = inspect_audio(data, claim, limits)
    return ValidatedMedia(
        kind=MediaKind.AUDIO,
        mime=audio.mime,
        size_bytes=len(data),
        sha256=digest,
        width=None,
        height=None,
        duration_s=audio.duration_s,
        captured_at=None,
        metadata=audio.metadata,
        thumbnail=None,
        thumbnail_mime=None,
    )


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"
