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
from glimpse.errors import ItemError
from glimpse.messages import MediaAccepted, TextReady
from glimpse.models.captioning import Captioner, ImageAnalysis
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
            done = captions.stored(conn, list(live), model.model_id, model.revision)
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
        """Items whose image could not be read. Gone with its upload (deleted since we
        looked): nothing to do. Upload still there but its thumbnail missing: a failure
        people must see, retried (a store restart can hide an object for a moment)."""
        if not items:
            return {}
        with self.pool.connection() as conn:
            live = media.accepted_ids(conn, [item.media_id for item in items.values()])
        return {
            i: Failed(ItemError("thumbnail_missing", f"thumbnail {item.thumbnail_key} is missing"))
            for i, item in items.items()
            if item.media_id in live
            and item.thumbnail_key is not None
            and self.store.head(item.key) is not None
        }

    def _analyse(self, items: dict[int, MediaAccepted]) -> dict[int, ImageAnalysis]:
        """Run the model on each chunk of ``batch_size`` images as soon as it is decoded,
        while the fetch pool keeps downloading and decoding the rest: the model waits
        on S3 and Pillow only for the first chunk."""
        analyses: dict[int, ImageAnalysis] = {}
        chunk: list[tuple[int, Image.Image]] = []

        def flush() -> None:
            found = self.captioner.predict([image for _, image in chunk])
            analyses.update(zip((i for i, _ in chunk), found, strict=True))
            chunk.clear()

        # Executor.map submits every fetch at once and yields the results in order.
        for i, image in zip(
            items, self.fetchers.map(self._load_image, items.values()), strict=True
        ):
            if image is None:
                continue  # missing: see _missing
            chunk.append((i, image))
            if len(chunk) >= self.captioner.batch_size:
                flush()
        if chunk:
            flush()
        return analyses

    def _store(
        self, items: dict[int, MediaAccepted], analyses: dict[int, ImageAnalysis]
    ) -> dict[int, ItemResult]:
        """One transaction for the batch's captions and visual vectors."""
        if not items:
            return {}
        model = self.captioner
        order = list(items)
        rows = [
            CaptionRow(items[i].media_id, model.model_id, model.revision,
                       analyses[i].caption, analyses[i].labels)
            for i in order
        ]  # fmt: skip
        with self.pool.connection() as conn, conn.transaction():
            captions.save(conn, rows)
            if self.visual:
                visual = np.stack([analyses[i].visual for i in order])  # type: ignore[misc]
                ids = [row.media_id for row in rows]
                vectors.save(conn, ids, self.visual, ["image"] * len(ids), visual)
        return {i: Done([self._announce(row)]) for i, row in zip(order, rows, strict=True)}

    def _announce(self, row: CaptionRow) -> OutboundMessage:
        ready = TextReady(media_id=row.media_id, source="caption", model=row.model, text=row.text)
        return OutboundMessage(
            self.kafka.captions_ready_topic, str(row.media_id).encode(), ready.to_json()
        )

    def _load_image(self, item: MediaAccepted) -> Image.Image | None:
        data = self.store.read(item.thumbnail_key or item.key, _MAX_IMAGE_BYTES)
        if data is None:
            return None
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (512, 512))  # originals without a thumbnail: decode small
            return image.convert("RGB")
