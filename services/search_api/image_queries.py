"""Image queries: an uploaded picture (a photo, the page's drawing) → its visual vector,
made exactly as the pipeline makes an upload's.

    ingest   validate_media (libmagic, full decode within the pixel limit) → thumbnail
    caption  decode_thumbnail → captioner.predict → visual vector
    here     the same functions on the request body, with image-search limits

The captioner is the registry's active visual model, loaded in the background at
startup and followed like the text query model (``query_model.py``): until it is in,
image queries answer 503 with Retry-After. ``image_search.enabled = false`` loads nothing
(an API pod that should stay small) and image queries answer 404 saying so.

Any route that needs an image's visual vector (search by image, a label set's
prediction) calls ``ImageQueries.read(request, key)``: Content-Type, rate limit, body,
checks, vector; or ``vector_of(data)`` with bytes in hand. ``picture_vector`` is the
same without HTTP (a benchmark, a script).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import psycopg
from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool

from glimpse.config import ImageSearchSettings, LimitsSettings, ModelSettings, Settings
from glimpse.db.keys import ApiKey
from glimpse.db.vectors import VectorModel
from glimpse.media import MediaKind, Rejected, RejectReason, ValidatedMedia, validate_media
from glimpse.media.budget import Admit, DecodeBudget, unlimited
from glimpse.media.sniff import sniff
from glimpse.media.thumbnail import decode_thumbnail
from services.search_api.admission import RateLimiter
from services.search_api.auth import client_of
from services.search_api.query_model import QueryModel, QueryRole, Serving

if TYPE_CHECKING:
    from glimpse.models.base import ModelObserver
    from glimpse.models.captioning import Captioner

_STATUS_CODES = {
    RejectReason.TOO_LARGE: 413,
    RejectReason.UNSUPPORTED_TYPE: 415,
    RejectReason.MIME_MISMATCH: 415,
}
_FORMATS = "JPEG, PNG, WebP, GIF, HEIC or AVIF"


def picture_body(description: str) -> dict[str, Any]:
    """The OpenAPI request body of a route that takes a picture (``openapi_extra``)."""
    return {
        "requestBody": {
            "required": True,
            "description": f"the picture itself: {_FORMATS} ({description})",
            "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    }


def _captioner(models: ModelSettings) -> Captioner:
    from glimpse.models.captioning import load_captioner  # imports torch: seconds

    return load_captioner(models)


def _visual_dim(captioner: Captioner) -> int | None:
    return captioner.visual_dim


# The visual vectors of the active visual model: the captioner's (one forward pass
# gives the caption and the vector, so "the visual model" is the captioner).
VISUAL: QueryRole[Captioner] = QueryRole("visual", "image model", _captioner, _visual_dim)


@dataclass(frozen=True, slots=True)
class ImageQuery:
    model: VectorModel  # whose vectors ``vector`` may be compared with
    vector: npt.NDArray[np.float32]  # L2-normalised
    mime: str  # what the image turned out to be
    width: int
    height: int


class ImageQueries:
    def __init__(
        self,
        settings: ImageSearchSettings,
        limits: LimitsSettings,
        model: QueryModel[Captioner] | None,
        rate: RateLimiter,
    ) -> None:
        self.settings = settings
        # ingest's checks and thumbnail size, with the small limits of a query
        self._checks = limits.model_copy(
            update={"max_bytes": settings.max_bytes, "max_pixels": settings.max_pixels}
        )
        self.model = model
        self.rate = rate
        # Decoded pixels cost memory whatever the byte limit (a 2 MiB PNG can hold
        # 25 MP): concurrent queries share a budget, as ingest's decodes do.
        self._admit = DecodeBudget(max(1, int(settings.decode_budget_megapixels * 1e6))).admit

    @classmethod
    def start(
        cls,
        settings: Settings,
        pool: ConnectionPool[psycopg.Connection[Any]],
        observer: ModelObserver | None = None,
    ) -> ImageQueries:
        """Start loading the visual model in the background (unless turned off)."""
        model = None
        if settings.image_search.enabled:
            model = QueryModel(
                VISUAL, settings.models, pool, settings.search.model_check_s, observer=observer
            )
            model.start_loading()
        rate = RateLimiter(settings.api.image_rate, "image searches")
        return cls(settings.image_search, settings.limits, model, rate)

    def stop(self) -> None:
        if self.model is not None:
            self.model.stop()

    def status(self) -> str:
        """For /readyz: off, loading, ok, or the load error."""
        if self.model is None:
            return "off"
        if self.model.loaded:
            return "ok"
        return "loading" if self.model.error is None else f"error: {self.model.error}"

    def serving(self) -> Serving[Captioner]:
        """The visual model now; 404 when image search is off, 503 while it loads (with
        Retry-After) or when it could not be loaded (without: retrying will not help)."""
        if self.model is None:
            raise HTTPException(
                404,
                "search by image is turned off on this server "
                "(GLIMPSE_IMAGE_SEARCH__ENABLED=false)",
            )
        if self.model.error is not None and not self.model.loaded:
            raise HTTPException(503, f"search by image is unavailable: {self.model.error}")
        return self.model.serving()

    async def read(self, request: Request, key: ApiKey | None) -> ImageQuery:
        """The request's body as an image query: type, model, rate limit, then the body
        (bounded by BodyLimit as it arrives), checked and turned into a vector."""
        # An image type cannot be sent by a cross-site form or "no-cors" fetch without a
        # CORS preflight, which this API never grants.
        declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not declared.startswith("image/"):
            raise HTTPException(
                415, "send the picture with an image Content-Type (e.g. image/png or image/jpeg)"
            )
        self.serving()  # off or loading: say so before reading a byte
        self.rate.admit(client_of(request, key))
        data = await request.body()
        return await run_in_threadpool(self.vector_of, data)

    def vector_of(self, data: bytes) -> ImageQuery:
        """Blocking (decode and model): call it from a worker thread."""
        serving = self.serving()
        try:
            checked, vector = picture_vector(data, serving.embedder, self._checks, self._admit)
        except Rejected as exc:
            raise HTTPException(_STATUS_CODES.get(exc.reason, 422), _in_words(exc)) from exc
        assert checked.width and checked.height  # an image
        return ImageQuery(serving.model, vector, checked.mime, checked.width, checked.height)


def picture_vector(
    data: bytes, captioner: Captioner, checks: LimitsSettings, admit: Admit = unlimited
) -> tuple[ValidatedMedia, npt.NDArray[np.float32]]:
    """The checked picture and its visual vector, as ingest and the caption stage make
    them; raises ``Rejected`` for anything but a usable picture within ``checks``.

    libmagic first: only what it calls an image reaches a decoder; then ingest's own
    checks (the header's pixel count within the limit before a pixel is decoded, then a
    full decode) and its thumbnail, decoded as the caption stage decodes it."""
    if data:
        claim = sniff(data)  # Rejected: neither image nor audio
        if claim.kind != MediaKind.IMAGE:
            raise Rejected(RejectReason.UNSUPPORTED_TYPE, f"{claim.label} is audio")
    checked = validate_media(data, checks, admit)
    assert checked.thumbnail is not None  # every accepted image has one
    [analysis] = captioner.predict([decode_thumbnail(checked.thumbnail)])
    if analysis.visual is None:
        raise ValueError(f"{captioner.model_id} makes no visual vectors")
    return checked, analysis.visual


def _in_words(exc: Rejected) -> str:
    if exc.reason == RejectReason.EMPTY:
        return "the picture is empty (0 bytes)"
    if exc.reason == RejectReason.UNSUPPORTED_TYPE:
        return f"search by image needs a picture ({_FORMATS}): {exc.message}"
    return f"the picture cannot be used: {exc.message}"
