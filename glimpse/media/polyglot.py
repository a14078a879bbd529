"""Files with a second identity: a ZIP archive hidden behind an image or audio header.

Why ZIP and nothing else: ZIP readers locate the archive from its *end*
(the end-of-central-directory record), so ``photo.jpg + archive.zip`` is a working
archive no matter what comes first — a real second identity. Other trailing data is
normal and is accepted: MPO/gain-map JPEGs (every recent iPhone photo) append more
JPEGs after the first EOI, Samsung and Google motion photos append an MP4, Samsung
adds a "SEFT" trailer. Markup appended after image data is inert: browsers sniff
only the start of a file, and originals are served with their stored MIME type.
"""

from __future__ import annotations

import struct

_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD_SIZE = 22  # fixed part of the end-of-central-directory record
_MAX_COMMENT = 0xFFFF


def ends_with_zip_archive(data: bytes) -> bool:
    """True if ``data`` ends with a ZIP end-of-central-directory record.

    The record must sit exactly where a ZIP reader looks: its comment length has
    to run to the last byte. A chance match inside compressed media would need the
    4-byte signature *and* that 2-byte length to line up, so it does not happen in
    practice.
    """
    search_from = max(0, len(data) - _EOCD_SIZE - _MAX_COMMENT)
    pos = data.rfind(_EOCD_SIGNATURE, search_from)
    while pos != -1:
        if pos + _EOCD_SIZE <= len(data):
            (comment_length,) = struct.unpack_from("<H", data, pos + 20)
            if pos + _EOCD_SIZE + comment_length == len(data):
                return True
        pos = data.rfind(_EOCD_SIGNATURE, search_from, pos)
    return False
