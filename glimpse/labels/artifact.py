"""A label set version as one file: the head's arrays and what they mean, in ``.npz``.

Arrays ``coef`` (float64, classes x dim) and ``intercept`` (float64), and ``meta``: a
JSON string with the format, name, version, classes, visual model and metrics. Read
with ``allow_pickle=False``: an artifact holds numbers and text, never code. The bytes'
SHA-256 is kept in Postgres and checked on load, so a row always meets the file it
was written with. Stored under ``.glimpse/label-sets/`` in the bucket, a prefix ingest
and reconcile ignore (``glimpse.events.DERIVED_PREFIXES``).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from glimpse.labels.head import LabelHead
from glimpse.storage import ObjectStore

FORMAT = "glimpse-label-head/1"
PREFIX = ".glimpse/label-sets/"
_MAX_BYTES = 64 * 1024 * 1024
_MIME = "application/octet-stream"


class ArtifactError(Exception):
    """An artifact that is missing, altered, or not one glimpse can read."""


@dataclass(frozen=True)
class Artifact:
    name: str
    version: int
    head: LabelHead
    metrics: dict[str, Any]


def key_of(name: str, version: int) -> str:
    return f"{PREFIX}{name}/v{version}.npz"


def to_bytes(artifact: Artifact) -> bytes:
    head = artifact.head
    meta = {
        "format": FORMAT,
        "name": artifact.name,
        "version": artifact.version,
        "classes": list(head.classes),
        "visual_model": head.visual_model,
        "metrics": artifact.metrics,
    }
    out = io.BytesIO()
    np.savez(out, coef=head.coef.astype(np.float64), intercept=head.intercept.astype(np.float64),
             meta=np.array(json.dumps(meta)))  # fmt: skip
    return out.getvalue()


def from_bytes(data: bytes) -> Artifact:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            meta = json.loads(str(arrays["meta"]))
            coef, intercept = arrays["coef"], arrays["intercept"]
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"not a label head artifact: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"unknown artifact format {meta.get('format')!r} (reads {FORMAT})")
    head = LabelHead(tuple(meta["classes"]), coef, intercept, meta["visual_model"])
    return Artifact(meta["name"], int(meta["version"]), head, meta["metrics"])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(store: ObjectStore, artifact: Artifact) -> tuple[str, str]:
    """Write the artifact to the bucket; its key and SHA-256."""
    data = to_bytes(artifact)
    key = key_of(artifact.name, artifact.version)
    store.put(key, data, _MIME)
    return key, sha256(data)


def load(store: ObjectStore, key: str, expected_sha256: str) -> Artifact:
    data = store.read(key, _MAX_BYTES)
    if data is None:
        raise ArtifactError(f"label head {key} is missing from the bucket")
    if sha256(data) != expected_sha256:
        raise ArtifactError(f"label head {key} is not the one recorded (SHA-256 differs)")
    return from_bytes(data)


def delete_all(store: ObjectStore, name: str) -> int:
    """Remove every version's file of set ``name``; how many."""
    keys = [obj.key for obj in store.list(f"{PREFIX}{name}/")]
    for key in keys:
        store.delete(key)
    return len(keys)
