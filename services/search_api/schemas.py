"""Response models of the HTTP API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from glimpse.db.media import MediaStatus


class StageFailure(BaseModel):
    """A stage gave up on the item (it went to the DLQ); `glimpse dlq retry` re-drives it."""

    stage: str
    reason: str  # machine-readable: processing_error, crashed_worker, thumbnail_missing...
    error: str
    message: str
    attempts: int
    failed_at: datetime
    retried_at: datetime | None = None


class CustomLabel(BaseModel):
    """A tag of an active label set (`glimpse labels`): its best label for the item."""

    label_set: str
    label: str
    confidence: float  # the head's probability; 1 for a person's correction
    unsure: bool  # below the set's threshold: a guess, listed by `glimpse labels review`
    corrected: bool = False  # set by a person in review


class MediaOut(BaseModel):
    id: uuid.UUID
    bucket: str
    key: str
    status: MediaStatus
    reason: str | None
    reason_detail: str | None
    kind: str | None
    mime: str | None
    size_bytes: int | None
    sha256: str | None
    width: int | None
    height: int | None
    duration_s: float | None
    captured_at: datetime | None
    metadata: dict[str, Any]
    thumbnail_key: str | None
    duplicate_of: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    caption: str | None = None
    labels: list[tuple[str, float]] = []
    text_in_image: str | None = None  # images: the words read in it (OCR), kept ones
    colours: list[tuple[str, float]] = []  # images: dominant colour names and their share
    transcript: str | None = None  # audio: what was said
    language: str | None = None  # audio: the transcript's language
    segments: list[tuple[float, float, str]] = []  # audio: (start s, end s, text)
    searchable: bool = False  # text stored and embedded: search can find it
    failures: list[StageFailure] = []  # stages that gave up on it, and why
    custom_labels: list[CustomLabel] = []  # tags of active label sets


class MediaPage(BaseModel):
    items: list[MediaOut]
    next_cursor: str | None


class Hit(BaseModel):
    id: uuid.UUID
    score: float  # fused rank score (higher is better)
    similarity: float | None  # cosine similarity to the query, when the vector side found it
    # True: shown because it is nearer the query than most of the library, but it does
    # not stand out: a guess, not a match (glimpse/relevance.py)
    weak: bool = False
    # how far the similarity stands above the library's typical one for this query, in
    # robust standard deviations; None without a vector match or a typical score
    standout: float | None = None
    key: str
    kind: str
    mime: str
    width: int | None
    height: int | None
    duration_s: float | None
    captured_at: datetime | None
    caption: str | None
    labels: list[tuple[str, float]]
    text_in_image: str | None = None  # images: the words read in it (OCR)
    colours: list[str] = []  # images: dominant colour names, largest first
    transcript: str | None = None  # audio: what was said
    # Why it matched the query's words: the parts of its text holding one of them
    # ("caption", "text in image", "colours", "transcript"), and "image" when the image
    # itself stands out in the joint image-text model's space (or, without one, in the
    # visual model's through the text-to-visual bridge); empty for a match by meaning
    # alone (the caption's vector), or without a query (similar images).
    matched_in: list[str] = []
    # the image's cosine similarity to the query in that space (joint model or bridge),
    # and its standout there; None when neither ranked it
    image_similarity: float | None = None
    image_standout: float | None = None
    custom_labels: list[CustomLabel] = []  # tags of active label sets
    thumbnail_url: str | None


class Suggestions(BaseModel):
    # phrases naming what the library holds, most frequent first ("a tabby cat")
    suggestions: list[str]


class SearchResults(BaseModel):
    query: str
    hits: list[Hit]
    next_cursor: str | None
    # the text model whose vectors answered (the active one, or the one before it while
    # a newly activated model loads)
    model: str | None = None


class LabelClassMetrics(BaseModel):
    precision: float
    recall: float
    support: int  # held-out examples of the label


class LabelSetOut(BaseModel):
    """A custom label set (`glimpse labels train`), its active version and how it did."""

    name: str
    active: bool
    version: int  # the active version, else the newest
    versions: int
    classes: list[str]
    visual_model: str
    unsure_below: float
    accuracy: float | None  # on the held-out examples
    per_label: dict[str, LabelClassMetrics]
    examples: int
    tagged: int  # items tagged by it
    unsure: int  # of those, below the threshold and not corrected
    corrections: int
    trained_at: datetime


class LabelSets(BaseModel):
    label_sets: list[LabelSetOut]


class PredictedLabel(BaseModel):
    label: str
    confidence: float  # the head's probability, 0-1


class LabelPrediction(BaseModel):
    """What an active label set says a picture shows, best first."""

    label_set: str
    version: int
    labels: list[PredictedLabel]
    # the best label's confidence is below the set's threshold: a guess, said as one
    unsure: bool
    visual_model: str  # whose vectors the head reads
