"""/v1/labels: the custom label sets, their active version and held-out metrics, and
what an active set says a picture shows (the page's drawing pad asks it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from glimpse.db import label_sets
from glimpse.db.keys import ApiKey
from glimpse.labels.head import predict
from services.search_api.auth import require_key_unless_open
from services.search_api.context import ApiContext, context
from services.search_api.image_queries import ImageQuery, picture_body
from services.search_api.schemas import (
    LabelPrediction,
    LabelSetOut,
    LabelSets,
    PredictedLabel,
)

router = APIRouter(prefix="/v1", tags=["labels"])
Ctx = Annotated[ApiContext, Depends(context)]
Key = Annotated[ApiKey | None, Depends(require_key_unless_open)]


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
async def list_label_sets(ctx: Ctx, key: Key) -> LabelSets:
    """Custom label sets: classes, whether active, held-out accuracy and per-label
    precision/recall, how many items they tagged and how many of those are unsure."""
    return LabelSets(label_sets=await run_in_threadpool(_sets, ctx))


@router.post(
    "/labels/{name}/predict",
    response_model=LabelPrediction,
    responses={
        404: {"description": "no active label set of that name (or search by image is off)"},
        409: {"description": "the set was trained on another visual model than the API runs"},
        413: {"description": "the picture is larger than image_search.max_bytes"},
        415: {"description": "the body is not a picture (or not sent as image/*)"},
        422: {"description": "not usable: damaged, or more pixels than image_search.max_pixels"},
        429: {"description": "too many pictures from this client"},
        503: {"description": "the image model is still loading: retry after Retry-After"},
    },
    openapi_extra=picture_body("e.g. the page's drawing as image/png"),
)
async def predict_labels(
    ctx: Ctx,
    key: Key,
    request: Request,
    name: Annotated[str, Path(max_length=200)],
    top: Annotated[int, Query(ge=1, le=20)] = 3,
) -> LabelPrediction:
    """What the active version of label set ``name`` says the picture shows."""
    query = await ctx.image_queries.read(request, key)
    return await run_in_threadpool(_predict, ctx, name, query, top)


def _predict(ctx: ApiContext, name: str, query: ImageQuery, top: int) -> LabelPrediction:
    with ctx.pool.connection() as conn:
        found = ctx.label_heads.get(conn, name)
        labelled = label_sets.get(conn, name)
    if found is None or labelled is None:
        raise HTTPException(404, f"no active label set {name!r} (see GET /v1/labels)")
    version, head = found
    if version.visual_model != query.model.model:
        raise HTTPException(
            409,
            f"{name!r} was trained on vectors of {version.visual_model}, the API reads "
            f"pictures with {query.model.model}: train it again (glimpse labels train)",
        )
    [ranked] = predict(head, [query.vector], top=top)
    labels = [PredictedLabel(label=label, confidence=round(p, 4)) for label, p in ranked]
    return LabelPrediction(
        label_set=name,
        version=version.version,
        labels=labels,
        unsure=ranked[0][1] < labelled.unsure_below,
        visual_model=version.visual_model,
    )
