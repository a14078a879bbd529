"""What the file says it is: libmagic on the first bytes, mapped to what ingest accepts.

libmagic only reads the leading bytes, so its answer is a *claim*; the decoders in
``image`` and ``audio`` must agree with it before a file is accepted.
libmagic 5.44 knows HEIC/HEIF (``image/heic``, ``image/heif``) and AVIF (``image/avif``)
from the ISO-BMFF ``ftyp`` brands, so no extra detection is needed for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import magic

from glimpse.media.reasons import MediaKind, Rejected, RejectReason

# libmagic decides from the start of the file; 8 KiB covers every format accepted here.
SNIFF_BYTES = 8192


@dataclass(frozen=True, slots=True)
class Claim:
    """The type libmagic reports, translated: canonical MIME and a name for messages."""

    kind: MediaKind
    mime: str  # canonical MIME this file becomes if the decoder agrees
    label: str  # short name used in messages: "JPEG", "MP3", ...
    detected: str  # what libmagic said, verbatim


# detected MIME -> (canonical MIME, label)
_IMAGES: dict[str, tuple[str, str]] = {
    "image/jpeg": ("image/jpeg", "JPEG"),
    "image/png": ("image/png", "PNG"),
    "image/apng": ("image/png", "PNG"),
    "image/webp": ("image/webp", "WebP"),
    "image/gif": ("image/gif", "GIF"),
    "image/heic": ("image/heic", "HEIC"),
    "image/heic-sequence": ("image/heic", "HEIC"),
    "image/heif": ("image/heif", "HEIF"),
    "image/heif-sequence": ("image/heif", "HEIF"),
    "image/avif": ("image/avif", "AVIF"),
}

# MP4 and WebM are reported as video/* even when they hold only audio; the audio
# decoder looks at the streams and turns real video away.
_AUDIO: dict[str, tuple[str, str]] = {
    "audio/x-wav": ("audio/wav", "WAV"),
    "audio/wav": ("audio/wav", "WAV"),
    "audio/wave": ("audio/wav", "WAV"),
    "audio/vnd.wave": ("audio/wav", "WAV"),
    "audio/mpeg": ("audio/mpeg", "MP3"),
    "audio/mp3": ("audio/mpeg", "MP3"),
    "audio/x-mp3": ("audio/mpeg", "MP3"),
    "audio/ogg": ("audio/ogg", "Ogg"),
    "audio/opus": ("audio/ogg", "Ogg"),
    "application/ogg": ("audio/ogg", "Ogg"),
    "audio/flac": ("audio/flac", "FLAC"),
    "audio/x-flac": ("audio/flac", "FLAC"),
    "audio/x-m4a": ("audio/mp4", "M4A"),
    "audio/m4a": ("audio/mp4", "M4A"),
    "audio/mp4": ("audio/mp4", "M4A"),
    "video/mp4": ("audio/mp4", "MP4"),
    "audio/webm": ("audio/webm", "WebM"),
    "video/webm": ("audio/webm", "WebM"),
}

ACCEPTED_IMAGES = "JPEG, PNG, WebP, GIF, HEIC/HEIF, AVIF"
ACCEPTED_AUDIO = "WAV, MP3, Ogg (Vorbis/Opus), FLAC, M4A/MP4 audio, WebM audio"
#: every MIME type a client may declare for a file glimpse could accept
CLAIMABLE_MIMES = frozenset(_IMAGES) | frozenset(_AUDIO)
AUDIO_MIMES = frozenset(_AUDIO)


def is_audio(data: bytes) -> bool:
    """libmagic's view alone: cheap, and decides before any decoder sees the bytes."""
    try:
        return sniff(data).kind == MediaKind.AUDIO
    except Rejected:
        return False


def sniff(data: bytes) -> Claim:
    """Classify ``data`` by its leading bytes; raise ``Rejected`` for anything not accepted."""
    detected = magic.from_buffer(data[:SNIFF_BYTES], mime=True)
    if not isinstance(detected, str):  # python-magic is untyped; be sure of what came back
        detected = str(detected)
    if detected in _IMAGES:
        mime, label = _IMAGES[detected]
        return Claim(MediaKind.IMAGE, mime, label, detected)
    if detected in _AUDIO:
        mime, label = _AUDIO[detected]
        return Claim(MediaKind.AUDIO, mime, label, detected)
    raise Rejected(RejectReason.UNSUPPORTED_TYPE, _unsupported_message(detected))


def _unsupported_message(detected: str) -> str:
    if detected == "image/svg+xml":
        return (
            "SVG is not accepted: it is an XML document that can carry scripts "
            f"(detected {detected})"
        )
    if detected.startswith("video/"):
        return f"video is not supported (detected {detected})"
    if detected.startswith("image/"):
        return f"{detected} images are not supported; accepted images: {ACCEPTED_IMAGES}"
    if detected.startswith("audio/"):
        return f"{detected} audio is not supported; accepted audio: {ACCEPTED_AUDIO}"
    if detected in ("application/octet-stream", "application/x-empty"):
        return f"could not tell what kind of file this is (detected {detected})"
    return f"looks like {detected}, not an image or audio file"
