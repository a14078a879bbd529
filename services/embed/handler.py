"""Embed: text about a media item (a caption or a transcript) in, a text vector out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import ValidationError

from glimpse.bus import InboundMessage
from glimpse.db import captions, failures, media, stage_models, vectors
from glimpse.db.pool import autocommit
from glimpse.messages import TextReady
from glimpse.metrics import EmbedMetrics
from glimpse.models.text import TextEmbedder
from glimpse.runtime import DeadLetter, Done, Failed, ItemResult, Outcome


@dataclass
class EmbedHandler:
    pool: ConnectionPool[psycopg.Connection[Any]]
    embedder: TextEmbedder
    metrics: EmbedMetrics | None = None
    # the embedder's load spec for the registry (glimpse.model_specs): the API loads
    # the active text model from it
    spec: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.embedder.load()
        self.model = vectors.VectorModel(self.embedder.model_id, "text", self.embedder.dim)
        # builds the model's index CONCURRENTLY the first time: live writes go on
        with autocommit(self.pool) as conn:
            vectors.register_model(conn, self.model, self.embedder.revision, self.spec)

    def close(self) -> None:
        self.pool.close()

    def record_failure(self, message: InboundMessage, letter: DeadLetter) -> None:
        try:
            text = TextReady.from_json(message.value)
        except ValidationError:
            return  # no media to attach it to: the DLQ entry is the record
        with self.pool.connection() as conn:
            failures.record(conn, text.media_id, letter.stage, letter.reason,
                            letter.error_type, letter.message, letter.attempts,
                            letter.origin)  # fmt: skip

    def handle(self, batch: Sequence[InboundMessage]) -> list[ItemResult]:
        results: list[ItemResult] = []
        texts: dict[int, TextReady] = {}
        for i, message in enumerate(batch):
            try:
                texts[i] = TextReady.from_json(message.value)
                results.append(Done())
            except ValidationError as exc:
                results.append(Failed(exc, permanent=True))
        with self.pool.connection() as conn:
            live = media.accepted_ids(conn, [t.media_id for t in texts.values()])
            # a re-delivered text whose vector is already newer needs no model call
            fresh = vectors.fresh_text_vectors(conn, list(live), self.model)
            passed_over = self._not_the_active_caption(conn, texts)
            todo = {
                i: t
                for i, t in texts.items()
                if t.media_id in live
                and not (t.media_id in fresh and fresh[t.media_id] in (None, t.model))
                and i not in passed_over
            }
            for i in texts.keys() - todo.keys():
                results[i] = Done(outcome=Outcome.SKIPPED)  # done, deleted or replaced since
            if todo:
                vecs = self.embedder.embed([t.text for t in todo.values()])
                ids = [t.media_id for t in todo.values()]
                # upload -> searchable counts an item's first vector only: a re-caption
                # or an overwrite would measure from the row's first upload
                first = set(ids) - vectors.with_vector(conn, ids, self.model)
                with conn.transaction():
                    vectors.save(conn, ids, self.model, [t.source for t in todo.values()], vecs,
                                 [t.model for t in todo.values()])  # fmt: skip
                    failures.clear(conn, "embed", ids)
                if self.metrics is not None and first:
                    for kind, seconds in media.seconds_since_created(conn, list(first)):
                        self.metrics.upload_to_searchable.labels(kind).observe(seconds)
        return results

    def _not_the_active_caption(
        self, conn: psycopg.Connection[Any], texts: dict[int, TextReady]
    ) -> set[int]:
        """Indexes of captions by a captioner search does not serve, of items the active
        one has captioned: the item's vector must say what search shows. A captioner
        filled side by side is embedded once activated (``glimpse models activate``
        re-embeds); until then, only items the active one has not captioned (yet)
        take its caption."""
        active = stage_models.active(conn, "captioner")
        if active is None:
            return set()
        others = {i: t for i, t in texts.items()
                  if t.source == "caption" and t.model != active.model}  # fmt: skip
        if not others:
            return set()
        covered = captions.captioned_by(conn, [t.media_id for t in others.values()], active.model)
        return {i for i, t in others.items() if t.media_id in covered}
