"""Tagging: visual vectors in, one tag per active label set out.

The caption worker tags each new image from the vector it just computed (a matrix
product per batch, no model, no new topic); the ``labels`` backfill tags stored items
from their stored vectors. Both read the active sets through ``ActiveHeads``, which
asks Postgres which versions are active (one small query) and loads a version's head
from the bucket only when it first sees it.

    heads = ActiveHeads(store)
    loaded = heads.refresh(conn)                     # [(Version, LabelHead), ...]
    save_tags(conn, tags_for(loaded, ids, vectors))
    version, head = heads.get(conn, "digits")        # one set, e.g. to predict on demand
    predict(head, [vector], top=3)                   # [[("7", 0.93), ("1", 0.04), ...]]
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from glimpse.db import label_sets
from glimpse.db.label_sets import Tag, Version
from glimpse.labels import artifact
from glimpse.labels.head import LabelHead, predict
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)
ALTERNATIVES = 3  # runners-up kept with each tag, for review


@dataclass
class ActiveHeads:
    """The heads of the active label set versions, loaded once per version."""

    store: ObjectStore
    _heads: dict[tuple[str, int], LabelHead] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(
        self, conn: psycopg.Connection[Any], visual_model: str | None = None
    ) -> list[tuple[Version, LabelHead]]:
        """Active versions with their heads (of ``visual_model`` only, if given). A
        version whose artifact cannot be read is left out and logged: the other sets
        still tag, and it is tried again at the next call."""
        active = label_sets.active_versions(conn)
        loaded = []
        with self._lock:
            wanted = {(v.name, v.version) for v in active}
            for stale in self._heads.keys() - wanted:
                del self._heads[stale]
            for v in active:
                if visual_model is not None and v.visual_model != visual_model:
                    continue
                head = self._heads.get((v.name, v.version)) or self._load(v)
                if head is not None:
                    self._heads[(v.name, v.version)] = head
                    loaded.append((v, head))
        return loaded

    def get(self, conn: psycopg.Connection[Any], name: str) -> tuple[Version, LabelHead] | None:
        """The active version of set ``name`` with its head; None if it is not active (or
        its artifact cannot be read). For answering "what is this image?" on demand."""
        return next(((v, head) for v, head in self.refresh(conn) if v.name == name), None)

    def _load(self, v: Version) -> LabelHead | None:
        try:
            return artifact.load(self.store, v.artifact_key, v.artifact_sha256).head
        except artifact.ArtifactError as exc:
            log.error("label set %s v%d does not tag: %s", v.name, v.version, exc)
            return None


def tags_for(
    loaded: Sequence[tuple[Version, LabelHead]],
    media_ids: Sequence[uuid.UUID],
    vectors: npt.NDArray[np.floating[Any]],
) -> list[Tag]:
    """One tag per item and set: the best label, its confidence, the runners-up."""
    tags: list[Tag] = []
    if not media_ids:
        return tags
    for v, head in loaded:
        for mid, ranked in zip(media_ids, predict(head, vectors, ALTERNATIVES + 1), strict=True):
            (label, confidence), *rest = ranked
            tags.append(Tag(mid, v.name, v.version, label, confidence, rest))
    return tags
