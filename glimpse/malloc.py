"""Give freed large buffers back to the OS at once, so a worker's RSS follows what it
holds now rather than the most each of its threads ever held.

glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MB),
so later large buffers (Pillow allocates images in 16 MB blocks, PyAV and CTranslate2
their frames) come from per-thread arenas, which keep what is freed. With 4 ingest
threads, a decode budget admitting one 100-MP JPEG at a time still peaked at +1.9 GB;
with a fixed threshold, at one decode's +670 MB (bench/RESULTS.md, memory).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
THRESHOLD_BYTES = 1 << 20


def release_large_frees(threshold_bytes: int = THRESHOLD_BYTES) -> bool:
    """Serve allocations of ``threshold_bytes`` and more with mmap, unmapped when freed.
    Call once at process start. False where the C library has no such knob."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    applied = bool(mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
    if not applied:
        log.info("mallopt(M_MMAP_THRESHOLD) not supported here")
    return applied
