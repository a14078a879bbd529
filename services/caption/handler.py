"""Caption: an accepted image in, a caption (+ labels) and a visual vector out.

Both come from one forward pass of the captioner, so the backbone never runs twice
for one image. Reads the 512-px thumbnail rather than the original: on a CPU the
decode costs more than the model.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from PIL import Image
from psycopg_pool import ConnectionPool
from pydantic import ValidationError

from glimpse.bus import InboundMessage, OutboundMessage
from glimpse.config import KafkaSettings
from glimpse.db import captions, media, vectors
from glimpse.db.captions import CaptionRow
from glimpse.messages import MediaAccepted, TextReady
from glimpse.models.captioning import Captioner
from glimpse.runtime import DeadLetter, Done, Failed, ItemResult, Outcome
from glimpse.storage import ObjectStore

log = logging.getLogger(__name__)
_MAX_IMAGE_BYTES = 64 * 1024 * 1024


@dataclass
class CaptionHandler:
    store: ObjectStore
    pool: ConnectionPool[psycopg.Connection[Any]]
    captioner: Captioner
    kafka: KafkaSettings
    fetchers: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4))

    def __post_init__(self) -> None:
        self.captioner.load()
        self.visual = (
            vectors.VectorModel(self.captioner.model_id, "visual", self.captioner.visual_dim)
            if self.captioner.visual_dim
            else None
        )
        if self.visual:
            with self.pool.connection() as conn:
                vectors.register_model(conn, self.visual)

    def close(self) -> None:
        self.fetchers.shutdown(wait=False, cancel_futures=True)
        self.pool.close()

    def record_failure(self, message: InboundMessage, letter: DeadLetter) -> None:
        try:
            item = MediaAccepted.from_json(message.value)
        except ValidationError:
            return
        origin = f"{letter.topic}/{letter.partition}@{letter.offset}"
        with self.pool.connection() as conn:
            media.record_failure(
                conn,
                item.bucket,
                item.key,
                letter.stage,
                letter.error_type,
                letter.message,
                letter.attempts,
                origin,
                fail_media=False,
            )

    def handle(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        results: dict[int, ItemResult] = {}
        items: dict[int, MediaAccepted] = {}
        for i, message in enumerate(batch):
            try:
                items[i] = MediaAccepted.from_json(message.value)
            except ValidationError as exc:
                results[i] = Failed(exc, permanent=True)
        with self.pool.connection() as conn:
            live = media.accepted_ids(conn, [item.media_id for item in items.values()])
        # Fetch and decode in parallel: S3 latency and JPEG decoding overlap.
        wanted = {i: item for i, item in items.items() if item.media_id in live}
        images = dict(
            zip(wanted, self.fetchers.map(self._load_image, wanted.values()), strict=True)
        )
        ready = {i: image for i, image in images.items() if image is not None}
        results.update(self._caption({i: items[i] for i in ready}, ready))
        for i in items.keys() - results.keys():
            results[i] = Done(outcome=Outcome.SKIPPED)  # deleted or replaced since
        return [results[i] for i in range(len(batch))]

    def _caption(
        self, items: dict[int, MediaAccepted], images: dict[int, Image.Image]
    ) -> dict[int, ItemResult]:
        """One model call for the batch, one transaction for its results."""
        if not items:
            return {}
        order = list(items)
        analyses = self.captioner.predict([images[i] for i in order])
        model = self.captioner
        rows = [
            CaptionRow(items[i].media_id, model.model_id, model.revision, a.caption, a.labels)
            for i, a in zip(order, analyses, strict=True)
        ]
        with self.pool.connection() as conn, conn.transaction():
            captions.save(conn, rows)
            if self.visual:
                visual = np.stack([a.visual for a in analyses if a.visual is not None])
                ids = [row.media_id for row in rows]
                vectors.save(conn, ids, self.visual, ["image"] * len(ids), visual)
        topic = self.kafka.captions_ready_topic
        return {
            i: Done(
                [
                    OutboundMessage(
                        topic,
                        str(row.media_id).encode(),
                        TextReady(
                            media_id=row.media_id, source="caption", model=row.model, text=row.text
                        ).to_json(),
                    )
                ]
            )
            for i, row in zip(order, rows, strict=True)
        }

    def _load_image(self, item: MediaAccepted) -> Image.Image | None:
        data = self.store.read(item.thumbnail_key or item.key, _MAX_IMAGE_BYTES)
        if data is None:
            return None
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (512, 512))  # originals without a thumbnail: decode small
            return image.convert("RGB")
