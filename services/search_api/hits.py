"""Turning ranked media ids into the hits the API returns."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from glimpse import explain
from glimpse.db import media
from services.search_api.schemas import Hit


def hits_for(
    conn: psycopg.Connection[Any],
    ranked: Sequence[tuple[uuid.UUID, float, float | None]],
    *,
    weak: Collection[uuid.UUID] = (),
    standout: Mapping[uuid.UUID, float | None] | None = None,
    query: str | None = None,
    image: Mapping[uuid.UUID, ImageMatch] | None = None,
) -> list[Hit]:
    """(media id, score, similarity) in rank order → hits with details, same order;
    ids in ``weak`` are marked as weak matches, ``standout`` gives their standouts,
    ``query`` (typed or heard) says which parts of each hit's text hold its words,
    ``image`` how the image itself compares with the query (joint model)."""
    ids = [mid for mid, _, _ in ranked]
    rows = media.details(conn, ids)
    matched = explain.matched_parts(conn, ids, query) if query else {}
    hits = []
    for mid, score, similarity in ranked:
        row = rows.get(mid)
        if row is None:
            continue  # deleted between ranking and now
        seen = (image or {}).get(mid)
        hits.append(
            Hit(
                id=mid,
                score=round(score, 6),
                similarity=None if similarity is None else round(similarity, 4),
                weak=mid in weak,
                standout=_rounded((standout or {}).get(mid)),
                key=row["key"],
                kind=row["kind"],
                mime=row["mime"],
                width=row["width"],
                height=row["height"],
                duration_s=row["duration_s"],
                captured_at=row["captured_at"],
                caption=row["caption"],
                labels=[(label, float(p)) for label, p in row["labels"]],
                text_in_image=row["text_in_image"],
                colours=[str(name) for name, _ in row["colours"]],
                transcript=row["transcript"],
                matched_in=matched.get(mid, [])
                + ([explain.IMAGE] if seen and seen.stands_out else []),
                image_similarity=round(seen.similarity, 4) if seen else None,
                image_standout=_rounded(seen.standout) if seen else None,
                thumbnail_url=f"/v1/media/{mid}/thumbnail" if row["thumbnail_key"] else None,
            )
        )
    return hits


@dataclass(frozen=True, slots=True)
class ImageMatch:
    """How the image itself compares with the query in the joint model's space."""

    similarity: float
    standout: float | None
    stands_out: bool  # at least a weak match there by itself


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
