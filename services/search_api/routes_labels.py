"""/v1/labels: the custom label sets, their active version and held-out metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from glimpse.db import label_sets
from services.search_api.auth import require_key_unless_open
from services.search_api.context import ApiContext, context
from services.search_api.schemas import LabelSetOut, LabelSets

router = APIRouter(prefix="/v1", tags=["labels"], dependencies=[Depends(require_key_unless_open)])
Ctx = Annotated[ApiContext, Depends(context)]


def _sets(ctx: ApiContext) -> list[LabelSetOut]:
    found = []
    with ctx.pool.connection() as conn:
        for s in label_sets.all_sets(conn):
            shown = s.active or s.latest
            if shown is None:
                continue  # created by a training run that did not finish
            metrics: dict[str, Any] = shown.metrics
            counts = label_sets.counts(conn, s.name)
            found.append(
                LabelSetOut(
                    name=s.name, active=s.active is not None, version=shown.version,
                    versions=s.latest.version if s.latest else 0, classes=shown.classes,
                    visual_model=shown.visual_model, unsure_below=s.unsure_below,
                    accuracy=metrics.get("accuracy"), per_label=metrics.get("per_label", {}),
                    examples=shown.examples, tagged=counts["tagged"], unsure=counts["unsure"],
                    corrections=counts["corrected"], trained_at=shown.created_at,
                )
            )  # fmt: skip
    return found


@router.get("/labels", response_model=LabelSets)
async def list_label_sets(ctx: Ctx) -> LabelSets:
    """Custom label sets: classes, whether active, held-out accuracy and per-label
    precision/recall, how many items they tagged and how many of those are unsure."""
    return LabelSets(label_sets=await run_in_threadpool(_sets, ctx))
