"""Weights revisions: short content hashes, equal in every process that loads the same files.

Hashing reads the files once (about 0.85 GB/s here: 26 ms for Lite0's 19 MB, 0.1 s for
MiniLM's 91 MB, about 1 s for BLIP base), which is small next to loading them, and
unlike size+mtime it survives copying a model into an image or onto another host.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

REVISION_CHARS = 12
_WEIGHT_SUFFIXES = frozenset({".safetensors", ".bin", ".pth", ".pt"})
# The architecture is as much part of the model as the weights are.
_CONFIG_NAMES = frozenset({"config.json"})


def file_revision(paths: Iterable[Path]) -> str:
    """sha256 over the names and bytes of ``paths`` (order does not matter)."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode())
        digest.update(b"\0")
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:REVISION_CHARS]


def directory_revision(directory: Path) -> str:
    """Revision of a ``save_pretrained`` directory: its weight files and its config."""
    files = [
        path
        for path in directory.iterdir()
        if path.is_file() and (path.suffix in _WEIGHT_SUFFIXES or path.name in _CONFIG_NAMES)
    ]
    if not any(path.suffix in _WEIGHT_SUFFIXES for path in files):
        raise FileNotFoundError(f"no weight files in {directory}")
    return file_revision(files)
