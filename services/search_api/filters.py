"""The filters every search route takes from its query string, declared once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query

from glimpse.search import SearchFilters


def search_filters(
    kind: Annotated[str | None, Query(pattern="^(image|audio)$")] = None,
    mime: Annotated[str | None, Query(max_length=100)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    prefix: Annotated[
        str | None, Query(max_length=1024, description="Only keys under this prefix")
    ] = None,
    label: Annotated[
        str | None, Query(max_length=100, description="Tagged with this label (active sets)")
    ] = None,
    min_confidence: Annotated[
        float | None, Query(ge=0, le=1, description="Its tag at least this confident")
    ] = None,
) -> SearchFilters:
    return SearchFilters(kind=kind, mime=mime, since=since, until=until, prefix=prefix,
                         label=label, min_confidence=min_confidence)  # fmt: skip


Filters = Annotated[SearchFilters, Depends(search_filters)]
