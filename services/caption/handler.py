"""Caption: an accepted image in, a caption (+ labels), cues and a visual vector out,
and the image's vector of the joint image-text model when one is configured.

Caption and visual vector come from one forward pass of the captioner, so the backbone
never runs twice for one image; the joint model reads the same decoded thumbnail.
Reads the 512-px thumbnail rather than the original: on a CPU the decode costs more
than the model. The cues (words in the image, colour names) are read from the same
thumbnail in the fetch threads while the model runs; only an image whose thumbnail
shows small text is read again from its original.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from PIL import Image, ImageOps
from psycopg_pool import ConnectionPool
from pydantic import ValidationError

from glimpse.bus import InboundMessage, OutboundMessage
from glimpse.config import CueSettings, KafkaSettings, LimitsSettings
from glimpse.db import captions, failures, media, stage_models, vectors
from glimpse.db.captions import CaptionRow
from glimpse.db.pool import autocommit
from glimpse.errors import ItemError, TransientError
from glimpse.media import Rejected, validate_media
from glimpse.media.image import DECODE_ERRORS
from glimpse.media.thumbnail import decode_thumbnail
from glimpse.messages import MediaAccepted, TextReady
from glimpse.models.captioning import Captioner, ImageAnalysis
from glimpse.models.cues import CueReader, ImageCues, searchable_text
from glimpse.models.joint import JointModel
from glimpse.runtime import DeadLetter, Done, Failed, ItemResult, Outcome
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)
_MAX_IMAGE_BYTES = 64 * 1024 * 1024
# Originals are decoded for OCR only up to this size (a 50-MP PNG is 150 MB decoded).
_MAX_ORIGINAL_PIXELS = 50_000_000
_UNREADABLE: tuple[type[Exception], ...] = (*DECODE_ERRORS, Image.DecompressionBombError)


@dataclass(frozen=True, slots=True)
class _Loaded:
    image: Image.Image
    cues: ImageCues


@dataclass(frozen=True, slots=True)
class _Analysed:
    analysis: ImageAnalysis
    cues: ImageCues
    joint: np.ndarray | None  # the joint model's image vector, when there is one


@dataclass
class CaptionHandler:
    store: ObjectStore
    pool: ConnectionPool[psycopg.Connection[Any]]
    captioner: Captioner
    kafka: KafkaSettings
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    # None: no cues (words, colours) are read
    cues: CueReader | None = None
    # the captioner's load spec for the registry (glimpse.model_specs)
    spec: dict[str, Any] = field(default_factory=dict)
    # None: no joint image-text model (the offline default)
    joint: JointModel | None = None
    joint_spec: dict[str, Any] = field(default_factory=dict)
    fetchers: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4))
    # how long an accepted image whose upload reads as missing is looked for again (a
    # SeaweedFS restart answers "not found" for a few seconds)
    missing_grace_s: float = 20.0
    _rebuilding: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.captioner.load()
        if self.cues:
            self.cues.load()
        self.cues_version = self.cues.version if self.cues else None
        self.visual = (
            vectors.VectorModel(self.captioner.model_id, "visual", self.captioner.visual_dim)
            if self.captioner.visual_dim
            else None
        )
        self.joint_vectors = None
        if self.joint:
            self.joint.load()
            self.joint_vectors = vectors.VectorModel(self.joint.model_id, "joint", self.joint.dim)
        with autocommit(self.pool) as conn:
            model = self.captioner
            stage_models.register(conn, "captioner", model.model_id, model.revision, self.spec)
            if self.visual:
                vectors.register_model(conn, self.visual, model.revision, self.spec)
            if self.joint and self.joint_vectors:
                vectors.register_model(
                    conn, self.joint_vectors, self.joint.revision, self.joint_spec
                )

    def close(self) -> None:
        self.fetchers.shutdown(wait=False, cancel_futures=True)
        self.pool.close()

    def record_failure(self, message: InboundMessage, letter: DeadLetter) -> None:
        try:
            item = MediaAccepted.from_json(message.value)
        except ValidationError:
            return
        with self.pool.connection() as conn:
            media.record_dead_letter(conn, item.bucket, item.key, letter, fail_media=False)

    def handle(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        results: dict[int, ItemResult] = {}
        items: dict[int, MediaAccepted] = {}
        for i, message in enumerate(batch):
            try:
                items[i] = MediaAccepted.from_json(message.value)
            except ValidationError as exc:
                results[i] = Failed(exc, permanent=True)
        model = self.captioner
        with self.pool.connection() as conn:
            live = media.accepted_ids(conn, [item.media_id for item in items.values()])
            done = captions.stored(
                conn, list(live), model.model_id, model.revision, self.cues_version
            )
            if self.joint_vectors:
                # captioned before the joint model came: analysed again, for its vector
                have = vectors.with_vector(conn, list(done), self.joint_vectors)
                done = {mid: row for mid, row in done.items() if mid in have}
        for i, item in items.items():
            if item.media_id in done:  # a re-delivery: announce again, don't run the model
                results[i] = Done([self._announce(done[item.media_id])], Outcome.SKIPPED)
        wanted = {
            i: item for i, item in items.items() if item.media_id in live and i not in results
        }
        analyses = self._analyse(wanted)
        results.update(self._store({i: items[i] for i in analyses}, analyses))
        results.update(self._missing({i: wanted[i] for i in wanted.keys() - analyses.keys()}))
        for i in items.keys() - results.keys():
            results[i] = Done(outcome=Outcome.SKIPPED)  # deleted or replaced since
        return [results[i] for i in range(len(batch))]

    def _missing(self, items: dict[int, MediaAccepted]) -> dict[int, ItemResult]:
        """Items whose image could not be read, although their row was accepted.

        - The upload is there, only its thumbnail is not (and it could not be rebuilt
          from the upload): a failure people must see, retried.
        - The upload is missing too: deleted a moment ago (ingest will mark the row), or
          the store is restarting and answers "not found" for a few seconds. Look again
          for up to ``missing_grace_s``: back → the batch is retried (transient); row
          deleted meanwhile, or still missing → nothing to do (a lost delete is
          reconcile's to find).
        """
        pending = dict(items)
        deadline = time.monotonic() + self.missing_grace_s
        while True:
            with self.pool.connection() as conn:
                live = media.accepted_ids(conn, [item.media_id for item in pending.values()])
            pending = {i: item for i, item in pending.items() if item.media_id in live}
            there = {i: item for i, item in pending.items() if self.store.head(item.key)}
            if there:  # the store answers: uploads missing now are really gone
                if not all(map(self._thumbnail_missing, there.values())):
                    raise TransientError("images unreadable a moment ago are back: retry")
                return {
                    i: Failed(
                        ItemError("thumbnail_missing", f"thumbnail {item.thumbnail_key} is missing")
                    )
                    for i, item in there.items()
                }
            if not pending or time.monotonic() >= deadline:
                return {}
            time.sleep(1.0)

    def _thumbnail_missing(self, item: MediaAccepted) -> bool:
        return item.thumbnail_key is not None and self.store.head(item.thumbnail_key) is None

    def _analyse(self, items: dict[int, MediaAccepted]) -> dict[int, _Analysed]:
        """Run the model on each chunk of ``batch_size`` images as soon as it is decoded,
        while the fetch pool keeps downloading, decoding and reading cues from the rest:
        the model waits on S3 and Pillow only for the first chunk."""
        analyses: dict[int, _Analysed] = {}
        chunk: list[tuple[int, _Loaded]] = []

        def flush() -> None:
            images = [loaded.image for _, loaded in chunk]
            found = self.captioner.predict(images)
            joint: list[np.ndarray | None] = [None] * len(chunk)
            if self.joint:
                joint = list(self.joint.embed_images(images))
            for (i, loaded), analysis, vector in zip(chunk, found, joint, strict=True):
                analyses[i] = _Analysed(analysis, loaded.cues, vector)
            chunk.clear()

        # Executor.map submits every fetch at once and yields the results in order.
        for i, loaded in zip(items, self.fetchers.map(self._load, items.values()), strict=True):
            if loaded is None:
                continue  # missing: see _missing
            chunk.append((i, loaded))
            if len(chunk) >= self.captioner.batch_size:
                flush()
        if chunk:
            flush()
        return analyses

    def _store(
        self, items: dict[int, MediaAccepted], analyses: dict[int, _Analysed]
    ) -> dict[int, ItemResult]:
        """One transaction for the batch's captions and vectors."""
        if not items:
            return {}
        model = self.captioner
        order = list(items)
        rows = []
        for i in order:
            analysis, cues = analyses[i].analysis, analyses[i].cues
            rows.append(
                CaptionRow(items[i].media_id, model.model_id, model.revision, analysis.caption,
                           analysis.labels, cues.ocr_text, cues.colours, self.cues_version)
            )  # fmt: skip
        ids = [row.media_id for row in rows]
        with self.pool.connection() as conn, conn.transaction():
            captions.save(conn, rows)
            if self.visual:
                visual = np.stack([analyses[i].analysis.visual for i in order])  # type: ignore[misc]
                vectors.save(conn, ids, self.visual, ["image"] * len(ids), visual)
            if self.joint_vectors:
                joint = np.stack([analyses[i].joint for i in order])  # type: ignore[misc]
                vectors.save(conn, ids, self.joint_vectors, ["image"] * len(ids), joint)
            failures.clear(conn, "caption", [row.media_id for row in rows])
        return {i: Done([self._announce(row)]) for i, row in zip(order, rows, strict=True)}

    def _rebuild_thumbnail(self, item: MediaAccepted) -> bytes | None:
        """The thumbnail made again from the upload, as ingest makes it, and stored.

        Thumbnails are shared by content; one can be removed by the delete of another
        copy of the same content in the instant this copy was accepted. One rebuild at a
        time: it decodes a full-size image."""
        assert item.thumbnail_key
        with self._rebuilding:
            original = self.store.read(item.key, self.limits.max_bytes)
            if original is None:
                return None
            try:
                checked = validate_media(original, self.limits)
            except Rejected:
                return None  # not the bytes ingest accepted: a newer upload is on its way
            if checked.thumbnail is None or checked.sha256 != item.sha256:
                return None
            self.store.put(item.thumbnail_key, checked.thumbnail, "image/jpeg")
            log.info("%s: thumbnail was missing; made it again from the upload", item.key)
            return checked.thumbnail

    def _announce(self, row: CaptionRow) -> OutboundMessage:
        text = row.text
        if self.cues:
            text = searchable_text(row.text, row.ocr_text, row.colours, self.cues.settings)
        ready = TextReady(media_id=row.media_id, source="caption", model=row.model, text=text)
        return OutboundMessage(
            self.kafka.captions_ready_topic, str(row.media_id).encode(), ready.to_json()
        )

    def _load(self, item: MediaAccepted) -> _Loaded | None:
        """The decoded thumbnail and the cues read from it (fetch thread)."""
        image = self._load_image(item)
        if image is None:
            return None
        if self.cues is None:
            return _Loaded(image, ImageCues())
        return _Loaded(image, self.cues.read(image, lambda side: self._load_original(item, side)))

    def _load_original(self, item: MediaAccepted, side: int) -> Image.Image | None:
        """The original, decoded to about ``side`` px on its long side, for reading small
        text; None when it is too large to be worth it or cannot be read."""
        settings = self.cues.settings if self.cues else CueSettings()
        pixels = (item.width or 0) * (item.height or 0)
        if item.size_bytes > settings.ocr_max_original_bytes or pixels > _MAX_ORIGINAL_PIXELS:
            return None
        data = self.store.read(item.key, settings.ocr_max_original_bytes)
        if data is None:
            return None
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.draft("RGB", (side, side))  # JPEG: decode at a fraction of the size
                upright = ImageOps.exif_transpose(image).convert("RGB")
        except _UNREADABLE as exc:
            log.info("%s: original not read for OCR (%s)", item.key, exc)
            return None
        upright.thumbnail((side, side), Image.Resampling.LANCZOS)
        return upright

    def _load_image(self, item: MediaAccepted) -> Image.Image | None:
        data = self.store.read(item.thumbnail_key or item.key, _MAX_IMAGE_BYTES)
        if data is None and item.thumbnail_key:
            data = self._rebuild_thumbnail(item)
        if data is None:
            return None
        return decode_thumbnail(data)  # originals without a thumbnail: decoded small
