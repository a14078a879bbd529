"""Byte-level truncation evidence that FFmpeg does not report (or reports as noise).

FFmpeg decodes a cut-off Ogg or MP3 file without complaint: it simply yields less
audio; a cut-off MP4 fails with "Invalid data found". These checks tell "shorter
recording" from "file cut short", and say where.
"""

from __future__ import annotations

_OGG_CAPTURE = b"OggS"
_OGG_HEADER = 27  # fixed part of a page header; then one lacing byte per segment
_BOX_HEADER = 8  # ISO-BMFF (MP4): 32-bit size + 4-char type
_MP4_TOP_LEVEL = frozenset(
    {
        "ftyp",
        "styp",
        "free",
        "skip",
        "wide",
        "mdat",
        "moov",
        "moof",
        "mfra",
        "meta",
        "uuid",
        "sidx",
        "pdin",
    }
)
_ID3_HEADER = 10
_MP3_LENGTH_TAGS = (b"Xing", b"Info", b"VBRI")
_MP3_TAG_WINDOW = 64  # the tags sit in the first frame, at most 36 bytes after its sync


def ogg_truncated_at(data: bytes) -> int | None:
    """Offset of an Ogg page that runs past the end of the file, else None.

    Pages are walked from the start; the walk stops quietly at anything that is not
    a page (trailing tags), since only a page cut in half proves truncation.
    """
    pos = 0
    while data.startswith(_OGG_CAPTURE, pos):
        if pos + _OGG_HEADER > len(data):
            return pos
        segments = data[pos + 26]
        lacing = data[pos + _OGG_HEADER : pos + _OGG_HEADER + segments]
        end = pos + _OGG_HEADER + segments + sum(lacing)
        if len(lacing) < segments or end > len(data):
            return pos
        pos = end
    return None


def mp4_truncated_at(data: bytes) -> tuple[int, str] | None:
    """(offset, type) of a top-level MP4 box that runs past the end of the file, else None."""
    pos = 0
    while pos + _BOX_HEADER <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8].decode("latin-1")
        if size == 1:  # 64-bit size follows the type
            if pos + 16 > len(data):
                return pos, kind
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:  # "extends to the end of the file"
            return None
        if size < _BOX_HEADER or kind not in _MP4_TOP_LEVEL:
            return None  # not a box we can judge (e.g. a tag appended by a tagger)
        if pos + size > len(data):
            return pos, kind
        pos += size
    return None


def mp3_has_length_header(data: bytes) -> bool:
    """True if the first MP3 frame carries a Xing/Info/VBRI header (a frame count).

    Without one, FFmpeg only estimates an MP3's duration from the bitrate, so a
    shortfall against that estimate proves nothing.
    """
    start = 0
    if data.startswith(b"ID3") and len(data) >= _ID3_HEADER:
        size = 0
        for byte in data[6:10]:  # "syncsafe" integer: 7 bits per byte
            size = (size << 7) | (byte & 0x7F)
        footer = _ID3_HEADER if data[5] & 0x10 else 0
        start = _ID3_HEADER + size + footer
    sync = _find_frame_sync(data, start)
    if sync is None:
        return False
    window = data[sync : sync + _MP3_TAG_WINDOW]
    return any(tag in window for tag in _MP3_LENGTH_TAGS)


def _find_frame_sync(data: bytes, start: int) -> int | None:
    pos = data.find(b"\xff", start)
    # padding between the tag and the first frame is short; don't scan the whole file
    while pos != -1 and pos < start + 4096:
        if pos + 1 < len(data) and data[pos + 1] & 0xE0 == 0xE0:
            return pos
        pos = data.find(b"\xff", pos + 1)
    return None
